"""Preemption and resumption: SIGTERM saves and exits 0; a SIGKILLed run resumes bit-identically.

Every run is ``python train.py`` in a subprocess with the same tiny config.  Run A goes straight
through.  Run B is stopped by SIGTERM (right after it starts, so it saves after its first step),
restarted and killed with SIGKILL once it has logged a few more steps (after another checkpoint
was started), then restarted to the end.  B must end with A's parameters and A's per-step losses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from converse_jax.train import Checkpointer, read_metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS = 80
OVERRIDES = [
    "--config=configs/zoo.py:converse_dncnn",
    "--config.model_overrides.features=4",
    "--config.model_overrides.num_blocks=1",
    "--config.batch_size=2",
    "--config.data.patch_size=12",
    "--config.data.num_threads=0",
    f"--config.num_train_steps={STEPS}",
    "--config.lr_milestones=(10,30)",
    "--config.learning_rate=0.001",
    "--config.log_every_steps=1",
    "--config.eval_every_steps=0",
    "--config.checkpoint_every_steps=8",
    "--config.keep_checkpoints=2",
]


def _start(workdir: Path) -> subprocess.Popen:
    # The runs share a compilation cache (same config, same programs): only the first ones compile.
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(workdir.parent / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen(
        [sys.executable, "train.py", f"--workdir={workdir}", *OVERRIDES],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"run ended (rc {proc.returncode}) before {what}:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _logged_steps(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1])["step"] if lines else 0


def _final_arrays(workdir: Path) -> dict:
    ckpt = Checkpointer(workdir, keep=2)
    try:
        assert ckpt.latest_step() == STEPS
        return ckpt.read_state(STEPS)
    finally:
        ckpt.close()


def test_sigterm_then_sigkill_then_resume_is_bit_identical(tmp_path):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    proc_a = _start(run_a)  # the uninterrupted reference, running alongside

    # SIGTERM as soon as the run has started: it trains one step, saves and exits with 0.
    proc = _start(run_b)
    _wait_for(lambda: (run_b / "config.json").exists(), proc, "config.json")
    proc.send_signal(signal.SIGTERM)
    rc, log = _finish(proc)
    assert rc == 0, log[-3000:]
    assert f"latest checkpoint: step 1 (no validation scores), {run_b}/checkpoints/1; evaluate it: " in log, log[-3000:]
    ckpt = Checkpointer(run_b, keep=2)
    assert ckpt.all_steps() == [1]
    ckpt.close()
    assert [r["step"] for r in read_metrics(run_b)] == [1]

    # Resume, then SIGKILL once a later checkpoint (step 8) has been started.
    proc = _start(run_b)
    _wait_for(lambda: _logged_steps(run_b) >= 10, proc, "step 10")
    proc.send_signal(signal.SIGKILL)
    rc, log = _finish(proc)
    assert rc == -signal.SIGKILL, f"the run finished before it could be killed (rc {rc})"
    assert _logged_steps(run_b) < STEPS

    # Resume to the end.
    rc, log = _finish(_start(run_b))
    assert rc == 0, log[-3000:]
    rc, log = _finish(proc_a)
    assert rc == 0, log[-3000:]

    metrics_a, metrics_b = read_metrics(run_a), read_metrics(run_b)
    assert [r["step"] for r in metrics_b] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in metrics_b] == [r["loss"] for r in metrics_a]
    assert [r["learning_rate"] for r in metrics_b] == [r["learning_rate"] for r in metrics_a]
    state_a, state_b = _final_arrays(run_a), _final_arrays(run_b)
    leaves_a = {k: v for k, v in _flatten(state_a)}
    leaves_b = {k: v for k, v in _flatten(state_b)}
    assert sorted(leaves_a) == sorted(leaves_b)
    for key, value in leaves_a.items():
        np.testing.assert_array_equal(leaves_b[key], value, err_msg=key)
    assert int(state_b["step"]) == STEPS


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}/{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _flatten(v, f"{prefix}/{i}")
    else:
        yield prefix, np.asarray(tree)
