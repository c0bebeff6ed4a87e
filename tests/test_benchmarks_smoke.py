"""Smoke tests of the benchmark scripts: each runs end to end in ``--quick`` mode (tiny shapes and
networks, one repetition) in a subprocess and writes JSON with the expected structure.

No timing is asserted (timings live in ``benchmarks/`` only); the checks are on structure and
on the correctness facts the scripts record (fast and Algorithm-1 networks agree, the remat
setting leaves the training loss unchanged).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, out: Path, *args: str) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / script), "--quick", "--reps", "1", "--out", str(out), *args]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert str(out) in proc.stdout  # the script says where the JSON went
    return json.loads(out.read_text())


def _check_timing(stats: dict) -> None:
    assert stats["median_s"] > 0 and stats["min_s"] <= stats["median_s"]
    assert len(stats["samples"]) == 1 and stats["inner"] >= 1
    assert stats["compile_s"] > 0


def test_converse2d_benchmark_quick(tmp_path):
    report = _run("converse2d.py", tmp_path / "op.json", "--shapes", "a,d")
    assert report["benchmark"] == "converse2d" and report["device"] == "cpu" and report["threads"] == 1
    assert report["quick"] is True and report["runs"] == 1 and set(report["shapes"]) == {"a", "d"}
    assert report["jax"]["cpus_pinned"] and len(report["jax"]["cpus_pinned"]) == 1
    assert {"cpu", "date_utc", "command"} <= set(report["machine"])
    for name, entry in report["shapes"].items():
        assert entry["config"]["name"] == name
        assert set(entry["modes"]) == {"fwd", "fwd+bwd"}
        for mode, res in entry["modes"].items():
            assert set(res) == {"ours", "reference", "floor", "floor_nhwc"}
            for stats in res.values():
                _check_timing(stats)
            ratios = entry["ratio_to_floor"][mode]
            assert ratios["floor"] == 1.0 and ratios["ours"] > 0
            lo, hi = entry["ratio_range_to_floor"][mode]["ours"]
            assert lo == hi == ratios["ours"]  # one worker process: its ratio is the median
    stages = report["shapes"]["a"]["stages_fwd"]  # scale 1: our forward pass stage by stage
    assert set(stages) == {"layout_in", "rfft2", "product", "irfft2", "layout_out", "ours"}
    assert stages["ours"]["fraction_of_ours"] == 1.0 and all(v["median_s"] > 0 for v in stages.values())
    assert "stages_fwd" not in report["shapes"]["d"]  # scale 2 takes another path
    assert report["stages_table"].startswith("| shape | layout_in ms |")
    assert "| (a) DnCNN training | fwd |" in report["table"]
    assert "| (d) SRResNet up-sampler | fwd+bwd |" in report["table"]


def test_models_benchmark_quick(tmp_path):
    report = _run("models.py", tmp_path / "models.json", "--only", "converse_usrnet_256,train_converse_dncnn")
    assert report["benchmark"] == "models" and report["quick"] is True
    assert set(report["cases"]) == {"converse_usrnet_256", "train_converse_dncnn"}

    infer = report["cases"]["converse_usrnet_256"]
    assert infer["config"]["kind"] == "inference" and infer["config"]["kernel"] == 7
    assert set(infer["candidates"]) == {"fast", "reference"}
    assert infer["max_abs_diff_fast_vs_reference"] < 1e-3  # same network, two operators
    h, w, c = infer["config"]["image"]
    assert infer["output_shape"] == [1, h, w, c]

    train = report["cases"]["train_converse_dncnn"]
    assert train["config"]["kind"] == "training" and train["config"]["remat"] is True
    assert set(train["candidates"]) == {"fast", "reference", "fast_remat"}
    losses = train["losses_first_two_steps"]
    assert abs(losses["fast"][1] - losses["fast_remat"][1]) <= 1e-6 * abs(losses["fast"][1])
    assert abs(losses["fast"][1] - losses["reference"][1]) <= 1e-3 * abs(losses["fast"][1])

    for case in (infer, train):
        for stats in case["candidates"].values():
            _check_timing(stats)
            assert stats["images_per_s"] > 0
            assert stats["rss_mib"]["peak"] > 0
            assert stats["xla_memory"] is None or stats["xla_memory"]["peak_estimate"] > 0
    assert "| train_converse_dncnn |" in report["table"]
    assert "| train_converse_dncnn |" in report["remat_table"]


def test_merge_runs_takes_ratios_within_each_process():
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.common import merge_runs

    def stats(t):
        return {"median_s": t, "median_cpu_s": t / 2, "min_s": t, "samples": [t], "cpu_samples": [t / 2], "inner": 1}

    # Per-process ratios 2.0, 1.5, 2.5 -> median 2.0; the ratio of the medians (3/2) would differ.
    runs = [{"ours": stats(o), "floor": stats(f)} for o, f in ((2.0, 1.0), (3.0, 2.0), (10.0, 4.0))]
    merged = merge_runs(runs, "floor")
    assert merged["ratio"] == {"ours": 2.0, "floor": 1.0}
    assert merged["cpu_ratio"]["ours"] == 2.0
    assert merged["ratio_range"]["ours"] == (1.5, 2.5)
    ours = merged["stats"]["ours"]
    assert ours["median_s"] == 3.0 and ours["run_medians_s"] == [2.0, 3.0, 10.0] and ours["min_s"] == 2.0
    assert ours["samples"] == [2.0, 3.0, 10.0] and ours["cpu_per_wall"] == 0.5


def test_dncnn_layout_benchmark_quick(tmp_path):
    """``benchmarks/dncnn_layout.py``: every layout candidate is timed for inference and training."""
    report = _run("dncnn_layout.py", tmp_path / "layout.json")
    assert report["benchmark"] == "dncnn_layout" and report["config"]["image"] == 24
    for kind in ("inference", "training"):
        timing = report[kind]["timing"]
        assert "ours" in timing and len(timing) >= 2, timing
        assert all(stats["median_s"] > 0 for stats in timing.values())


def test_pointwise_benchmark_quick(tmp_path):
    """``benchmarks/pointwise.py``: both pairs agree and are timed, with the allocator recorded."""
    report = _run("pointwise.py", tmp_path / "pointwise.json")
    assert report["benchmark"] == "pointwise" and report["malloc"] == "reuse"
    works = {k: v for k, v in report["shapes"]["quick"].items() if k != "shape"}
    assert set(works) == {"1×1 conv, value + gradients", "GELU forward", "GELU forward + gradient"}
    for work in works.values():
        assert work["max_abs_diff"] <= 1e-4 and len(work["timing"]) == 2
        assert all(s["median_s"] > 0 and s["median_page_faults"] >= 0 for s in work["timing"].values())


def test_train_memory_benchmark_quick(tmp_path):
    """``benchmarks/train_memory.py``: the demo recipe, tiny, estimated and timed in what fits."""
    report = _run("train_memory.py", tmp_path / "train_memory.json", "--time")
    assert report["benchmark"] == "train_memory" and report["quick"] is True
    demo = report["recipes"]["demo"]
    assert demo["batch"] == 4 and demo["estimate"]["recipe"] > 0 and demo["estimate"]["remat"] > 0
    assert set(demo["fits"]) == {"16", "12", "4.0"} and demo["fits"]["4.0"]["grad_accum_steps"] == 1
    assert demo["time"]["s_per_step"] > 0 and len(demo["time"]["samples"]) == 1
    assert report["table"].startswith("| recipe | batch | patch | step GiB | remat GiB |")


def test_fft_in_jit_benchmark_quick(tmp_path):
    """``benchmarks/fft_in_jit.py``: every program timed, each combination's extra cost is its
    time less its parts', and the training step's four FFTs are found next to the two alone."""
    report = _run("fft_in_jit.py", tmp_path / "fft.json")
    assert report["benchmark"] == "fft_in_jit" and report["quick"] is True and report["threads"] == 1
    res = report["shapes"]["quick"]
    timing, extra = res["timing"], res["extra_s"]
    assert all(stats["median_s"] > 0 for stats in timing.values())
    t = {name: stats["median_s"] for name, stats in timing.items()}
    assert extra["irfft2(Y·M)"] == pytest.approx(t["irfft2(Y·M)"] - t["irfft2"] - t["Y·M"], abs=1e-12)
    assert extra["rfft2 on (C,N,H,W)"] == pytest.approx(t["rfft2 on (C,N,H,W)"] - t["rfft2"], abs=1e-12)
    assert extra["move+pad(cond(gelu))"] == pytest.approx(
        t["move+pad(cond(gelu))"] - t["gelu"] - t["move+pad"], abs=1e-12
    )
    kinds = sorted(name.split()[1] for name in res["in_step"] if name.startswith("step "))
    assert kinds == ["IRFFT", "IRFFT", "RFFT", "RFFT"]  # forward pair and its transpose
    assert {"alone RFFT", "alone IRFFT"} <= set(res["in_step"])
    assert all(0 < ev["min_s"] <= ev["median_s"] for ev in res["in_step"].values())
    assert "| quick | whole forward |" in report["table"]
