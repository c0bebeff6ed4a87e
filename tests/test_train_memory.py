"""Training on the machine the user has: gradient accumulation, the memory check before the first
step, bounded dispatch (flat resident memory), shortened runs and what a run reports.

The end-to-end runs are ``converse-jax train`` in subprocesses, as a user types it (tiny networks;
``config.memory_limit_gb`` stands for a small device, so that the check has something to refuse).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import grain
import jax
import numpy as np
import pytest

from converse_jax.data import create_train_iterator
from converse_jax.models import get_model
from converse_jax.tasks import get_task
from converse_jax.train import (
    create_mesh,
    create_train_state,
    global_batch,
    init_variables,
    make_optimizer,
    make_train_step,
    replicated_sharding,
    train_and_evaluate,
)
from converse_jax.train.loop import MAX_STEPS_AHEAD, check_config, step_compiler
from converse_jax.train.memory import HEADROOM, Setting, StepMemory, format_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = (
    "--config.model_overrides.features=4",
    "--config.model_overrides.num_blocks=1",
    "--config.data.num_threads=0",
    "--config.data.val_max_images=1",
    "--config.data.val_crop=32",
)


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return env


def _train(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "converse_jax", "train", f"--workdir={workdir.name}", *args]  # relative, as typed
    return subprocess.run(cmd, cwd=workdir.parent, env=_env(), capture_output=True, text=True, timeout=timeout)


def _batch(n: int, size: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = rng.random((n, size, size, 1), np.float32)
    return {"input": clean + 0.1 * rng.standard_normal(clean.shape, np.float32), "target": clean}


def _run_steps(model, k: int, batches, mesh=None):
    """Losses of len(batches) steps with ``k`` micro-batches, and the final state (host arrays)."""
    mesh = mesh or create_mesh()
    tx = make_optimizer(1e-2, [], 0.5)
    variables = init_variables(model, "denoise", batches[0], jax.random.PRNGKey(0), mesh)
    state = jax.device_put(create_train_state(variables, tx, jax.random.PRNGKey(1)), replicated_sharding(mesh))
    step = make_train_step(model, tx, task="denoise", ema_decay=0.9, mesh=mesh, grad_accum_steps=k)
    losses = []
    for batch in batches:
        state, metrics = step(state, global_batch(batch, mesh))
        losses.append(float(metrics["loss"]))
    return losses, jax.device_get(state)


def test_accumulated_micro_batches_give_the_whole_batch_step():
    """Converse-DnCNN (no BatchNorm): the same losses and parameters with 1, 2, 4 or 8 micro-batches
    (float32 rounding: the micro-batch means are summed in another order)."""
    model = get_model("converse_dncnn", features=4, num_blocks=1)
    batches = [_batch(8, seed=s) for s in range(3)]
    losses, state = _run_steps(model, 1, batches)
    assert losses[-1] < losses[0]
    for k in (2, 4, 8):
        got, got_state = _run_steps(model, k, batches)
        np.testing.assert_allclose(got, losses, rtol=2e-6, err_msg=f"k={k}")
        for a, b in zip(jax.tree.leaves(got_state.params), jax.tree.leaves(state.params)):
            np.testing.assert_allclose(a, b, rtol=0, atol=2e-6, err_msg=f"k={k}")


def test_batchnorm_with_micro_batches():
    """DnCNN's BatchNorm normalises each micro-batch by its own statistics: the loss differs from the
    whole batch's; the running mean moves exactly as without accumulation, the running variance by
    the mean within-micro-batch variance, never more (law of total variance)."""
    model = get_model("dncnn", features=4, num_layers=3)
    batches = [_batch(8)]
    (loss1,), state1 = _run_steps(model, 1, batches)
    (loss4,), state4 = _run_steps(model, 4, batches)
    assert abs(loss1 - loss4) > 1e-4
    bn1, bn4 = state1.batch_stats["body_0"]["bn"], state4.batch_stats["body_0"]["bn"]
    np.testing.assert_allclose(bn4["mean"], bn1["mean"], rtol=0, atol=1e-7)
    assert np.all(bn4["var"] <= bn1["var"] + 1e-7) and not np.allclose(bn4["var"], bn1["var"], rtol=0, atol=1e-7)


_SHARDED = """
import json, sys, jax
sys.path.insert(0, sys.argv[1])
from tests.test_train_memory import _batch, _run_steps
from converse_jax.data import create_train_iterator
from converse_jax.models import get_model
assert jax.device_count() == 4
losses, _ = _run_steps(get_model("converse_dncnn", features=4, num_blocks=1), 2, [_batch(8, seed=s) for s in range(2)])
print(json.dumps(losses))
"""


def test_micro_batches_on_four_devices_give_the_one_device_step():
    """Batch 8 on 4 simulated devices in 2 micro-batches (one example per device and micro-batch):
    the losses of one device without accumulation."""
    env = dict(_env(), XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run([sys.executable, "-c", _SHARDED, str(REPO_ROOT)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    want, _ = _run_steps(get_model("converse_dncnn", features=4, num_blocks=1), 1, [_batch(8, seed=s) for s in range(2)])
    np.testing.assert_allclose(json.loads(proc.stdout.splitlines()[-1]), want, rtol=2e-6)


def test_config_checks_the_memory_fields():
    from converse_jax.configs import get_config

    config = get_config("demo")
    check_config(config)
    for field, value, message in (
        ("grad_accum_steps", 0, "config.grad_accum_steps must be a positive integer"),
        ("fit_memory", "maybe", "config.fit_memory must be one of ('stop', 'auto', 'off')"),
        ("memory_limit_gb", -1.0, "config.memory_limit_gb must be a number >= 0"),
    ):
        bad = get_config("demo")
        bad[field] = value
        with pytest.raises(ValueError, match=re.escape(message)):
            check_config(bad)


def _step_peaks(batch_size: int, patch: int, settings) -> list[int]:
    """XLA's estimate of the tiny Converse-DnCNN's step (the one of TINY) for each setting."""
    model = get_model("converse_dncnn", features=4, num_blocks=1)
    mesh, tx = create_mesh(), make_optimizer(1e-4, [], 0.5)
    batch = global_batch(_batch(batch_size, patch), mesh)
    variables = init_variables(model, "denoise", {"input": batch["input"][:1]}, jax.random.PRNGKey(0), mesh)
    state = jax.device_put(create_train_state(variables, tx, jax.random.PRNGKey(1)), replicated_sharding(mesh))
    compile_step = step_compiler(model, tx, get_task("denoise"), 0.999, mesh, state, batch)
    return [StepMemory.of(compile_step(s)).peak for s in settings]


def test_a_step_too_large_stops_with_the_numbers_and_the_fix_or_applies_it(tmp_path):
    """With a device (``config.memory_limit_gb``) between the step's estimate with 2 micro-batches
    and without: ``fit_memory='stop'`` (the default) stops before anything is trained with one line
    naming both numbers and ``--config.grad_accum_steps=2``; ``'auto'`` trains with it and says so."""
    peak1, peak2 = _step_peaks(16, 40, [Setting(False, 1), Setting(False, 2)])
    assert peak2 < 0.6 * peak1
    limit_gb = (peak1 + peak2) / 2 / HEADROOM / 2**30
    args = ("--config=demo", *TINY, "--config.batch_size=16", "--config.num_train_steps=2",
            "--config.eval_every_steps=0", f"--config.memory_limit_gb={limit_gb}")  # fmt: skip

    refused = _train(tmp_path / "refused", *args)
    assert refused.returncode == 1, refused.stderr[-3000:]
    (line,) = [ln for ln in refused.stderr.splitlines() if "error:" in ln]
    assert line.startswith(f"converse-jax train: error: the train step needs {format_bytes(peak1)} per device by "
                           "XLA's estimate (temporaries "), line
    assert line.endswith(f"but --config.memory_limit_gb is {format_bytes(limit_gb * 2**30)} (90% usable: "
                         f"{format_bytes(int(HEADROOM * int(limit_gb * 2**30)))}); it fits with --config.grad_accum_steps=2 "
                         f"({format_bytes(peak2)}), or set --config.fit_memory=auto to apply that"), line
    assert not (tmp_path / "refused" / "checkpoints").exists() or not any((tmp_path / "refused" / "checkpoints").iterdir())

    applied = _train(tmp_path / "applied", *args, "--config.fit_memory=auto")
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert "applying --config.grad_accum_steps=2" in applied.stderr
    assert "batch 16: 16 per device, as 2 micro-batches of 8 (config.grad_accum_steps=2), remat off" in applied.stderr
    saved = json.loads((tmp_path / "applied" / "config.json").read_text())
    assert saved["grad_accum_steps"] == 2 and saved["remat"] is False
    assert (tmp_path / "applied" / "checkpoints" / "2").is_dir()


def test_steps_shortens_the_recipe_and_the_run_reports(tmp_path):
    """``--steps 4`` on the demo recipe (700 steps, milestones 460/580/660): milestones and intervals
    scaled, the milestone that lands on the end is a warning, the start block describes the run,
    and the last line names the best checkpoint and the command that evaluates it."""
    run = _train(tmp_path / "short", "--config=demo", *TINY, "--steps=4")
    assert run.returncode == 0, run.stderr[-3000:]
    saved = json.loads((tmp_path / "short" / "config.json").read_text())
    assert saved["num_train_steps"] == 4 and saved["lr_milestones"] == [3, 4]
    assert (saved["log_every_steps"], saved["eval_every_steps"], saved["checkpoint_every_steps"]) == (1, 1, 1)
    log = run.stderr
    assert "config.lr_milestones 4: at or past the end of the run (4 steps), never applied" in log
    assert re.search(r"converse_dncnn \(denoise\), [\d,]+ parameters: steps 0 to 4, learning rate 0.01 x0.5 at 3, 4", log)
    assert "batch 8: 8 per device, remat off" in log and "devices: 1 x cpu, 1 process" in log
    assert re.search(r"train step memory: [\d.]+ MiB per device by XLA's estimate \(temporaries .*\); "
                     r"available host memory \((MemAvailable|cgroup limit)\): [\d.]+ GiB \(90% usable\)", log)
    last = log.strip().splitlines()[-1]
    best = json.loads((tmp_path / "short" / "metrics.jsonl").read_text().splitlines()[-1])
    assert re.search(r"best checkpoint: step \d, psnr [\d.]+ dB, short/checkpoints/\d; evaluate it: "
                     r"converse-jax evaluate --weights short --data TEST_IMAGES --out short/eval$", last), last
    assert "psnr" in best


class CountRunning(grain.DatasetIterator):
    """The real training iterator; before handing out each batch it counts the steps still running
    on the device (their ``finite`` flag, which the loop keeps until its next record, not ready)."""

    def __init__(self, parent: grain.DatasetIterator) -> None:
        super().__init__(parent)
        self.running: list[int] = []

    def __next__(self):
        flags = [a for a in jax.live_arrays() if a.shape == () and a.dtype == np.bool_]
        self.running.append(sum(not a.is_ready() for a in flags))
        return next(self._parent)

    def get_state(self):
        return self._parent.get_state()

    def set_state(self, state):
        self._parent.set_state(state)


def test_the_host_runs_at_most_max_steps_ahead_of_the_device(tmp_path):
    """30 steps of a network much slower than its data (32 features, 4 blocks, 8 patches of 40x40),
    one record at the end: whenever the loop takes a batch, at most ``MAX_STEPS_AHEAD`` dispatched
    steps are unfinished (without the bound, 28 were: the host ran to the end of the run)."""
    from converse_jax.configs import get_config

    config = get_config("demo")
    config.model_overrides.features, config.model_overrides.num_blocks = 32, 4
    config.num_train_steps = config.log_every_steps = config.checkpoint_every_steps = 30
    config.eval_every_steps, config.data.num_threads = 0, 0
    watch = CountRunning(create_train_iterator(config.data, global_batch_size=config.batch_size, seed=0))
    train_and_evaluate(config, tmp_path / "run", train_iterator=watch)
    assert len(watch.running) == 30
    assert 1 <= max(watch.running) <= MAX_STEPS_AHEAD, watch.running  # the device did lag; the host waited


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


RSS_MARGIN_MIB = 32
"""Allowed growth of the resident set from step 20 to step 200.  The run keeps freed memory for
reuse (:func:`converse_jax.utils.host_memory.keep_freed_memory`), so the heap can take a fresh
block of the size of the step's temporaries (a few MiB here) when a small allocation splits a
free one; measured growth: 7 MiB."""


def test_resident_memory_stays_flat_over_a_run(tmp_path):
    """``converse-jax train`` of a tiny network (batch 8 of 40x40), 200 steps, one log record and one
    checkpoint at the end: the resident memory, sampled while the progress bar counts steps 20 to
    199, grows by less than ``RSS_MARGIN_MIB`` (a leak of 200 KiB per step would exceed it).  On the
    CPU, XLA's runtime admits a bounded number of queued executions anyway; the bound of the
    loop itself is tested by ``test_the_host_runs_at_most_max_steps_ahead_of_the_device``."""
    steps = 200
    cmd = [sys.executable, "-m", "converse_jax", "train", "--workdir=flat", "--config=demo", *TINY,
           f"--config.num_train_steps={steps}", "--config.lr_milestones=(100,)", f"--config.log_every_steps={steps}",
           "--config.eval_every_steps=0", f"--config.checkpoint_every_steps={steps}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = {"step": -1, "tail": b""}

    def read_bar():  # the progress bar's count: the steps the host has dispatched
        while chunk := proc.stderr.read1(4096):
            progress["tail"] = (progress["tail"] + chunk)[-4096:]
            counts = re.findall(rb"(\d+)/%d \[" % steps, progress["tail"])
            if counts:
                progress["step"] = int(counts[-1])

    reader = threading.Thread(target=read_bar, daemon=True)
    reader.start()
    samples, deadline = [], time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        step, rss = progress["step"], _rss_kib(proc.pid)
        if rss is not None and 20 <= step < steps:
            samples.append((step, rss))
        time.sleep(0.01)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    assert proc.returncode == 0, progress["tail"].decode(errors="replace")[-3000:]
    assert samples and samples[0][0] < 60 and samples[-1][0] >= 150, samples[:3] + samples[-3:]
    first, highest = samples[0][1], max(rss for _, rss in samples)
    assert (highest - first) / 1024 < RSS_MARGIN_MIB, (first, highest, samples[::20])


def test_docs_name_every_config_field():
    """``docs/training.md`` (where ``train --help`` sends the user) documents every top-level field of
    the recipes' configs."""
    from converse_jax.configs import get_config

    text = (REPO_ROOT / "docs" / "training.md").read_text()
    missing = [field for field in get_config("converse_dncnn") if f"`{field}`" not in text]
    assert not missing, missing
