"""``benchmarks/tiling.py --quick``: the released Converse-DnCNN on a 64x96 cut of Set12 08.png,
whole and in 48-px windows, in a subprocess; checks the JSON it writes.

The whole-image row is the reference (no change, no difference); a tiled row with margins
restores the same picture within the issue's bound (0.05 dB, mean absolute difference below 0.5
grey levels), and XLA's memory estimate of one window is below that of the whole image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT, shared_path


def test_tiling_benchmark_quick(tmp_path):
    shared = shared_path("data/weights/converse_dncnn.pth").parents[2]
    out = tmp_path / "tiling.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "tiling.py"), "--quick", "--shared", str(shared), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"results: {out}" in proc.stdout
    report = json.loads(out.read_text())
    assert report["benchmark"] == "tiling" and report["quick"] is True and report["output_side"] == 256
    (result,) = report["results"]
    assert result["network"] == "converse_dncnn" and result["input_shape"] == [64, 96, 1]
    whole, *tiled = result["rows"]
    assert whole["setting"] == "whole" and whole["delta_db"] == 0 and whole["max_abs"] == 0
    assert [(r["tile"], r["margin"]) for r in tiled] == [(64, 16), (64, 24)]  # the network's 64 px, at most 64/4
    for row in tiled:
        assert row["mean_abs"] < 0.5 and 0 < row["bytes"] < whole["bytes"], row
    # a 64-px window of a 64x96 cut: 24-px margins keep the whole image's PSNR (16 px: -0.06 dB measured)
    assert abs(tiled[1]["delta_db"]) <= 0.05, tiled[1]


def test_influence_benchmark_quick(tmp_path):
    """``benchmarks/influence.py --quick``: the released Converse-DnCNN's impulse response on a
    64x64 crop; the share of its sensitivity beyond a margin falls with the margin, and nothing
    lies beyond the crop's half-side."""
    shared = shared_path("data/weights/converse_dncnn.pth").parents[2]
    out = tmp_path / "influence.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "influence.py"), "--quick", "--margins", "8,16,32",
           "--shared", str(shared), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"results: {out}" in proc.stdout
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert report["benchmark"] == "influence" and result["network"] == "converse_dncnn" and result["input_side"] == 64
    shares = [row["share"] for row in result["margins"]]
    assert [row["margin"] for row in result["margins"]] == [8, 16, 32]
    assert 1 > shares[0] > shares[1] > 0 and shares[2] == 0, shares


def test_tiling_settings_name_tile_margin_and_plain_windows():
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.tiling import parse_settings

    assert parse_settings("128,256:64,256:32:plain") == [(128, None, False), (256, 64, False), (256, 32, True)]


def test_window_error_benchmark_quick(tmp_path):
    """``benchmarks/window_error.py --quick``: one core of a 128x128 cut, plain and mirrored windows
    of two margins; the JSON holds a row per margin and window with finite differences, and
    the mirrored windows are twice the plain ones on each axis."""
    shared = shared_path("data/weights/converse_dncnn.pth").parents[2]
    out = tmp_path / "window_error.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "window_error.py"), "--quick", "--shared", str(shared),
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["network"] == "converse_dncnn" and result["input_shape"] == [128, 128, 1]
    rows = {(r["margin"], r["mirrored"]): r for r in result["rows"]}
    assert sorted(rows) == [(8, False), (8, True), (16, False), (16, True)]
    for (margin, mirrored), row in rows.items():
        assert row["window"] == [(16 + 2 * margin) * (2 if mirrored else 1)] * 2
        assert 0 < row["mean_abs"] <= row["rms"] <= row["max_abs"] < 255, row
    assert rows[16, False]["mean_abs"] < rows[8, False]["mean_abs"]  # more context, closer to the whole image
