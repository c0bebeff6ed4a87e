"""Data parallelism: 8 simulated CPU devices and two processes give the single-device result.

The two processes share one ``gs://`` workdir on the test session's Cloud Storage server
(``tests/gcs_server.py``), as the hosts of a pod share a bucket.

The multi-device runs happen in subprocesses (the device count is fixed when JAX starts); they
run this file as a script (``python tests/test_train_multidevice.py MODE ...``) and save the
final parameters to an ``.npz`` file that the test compares with an in-process 1-device run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS_8DEV = 3
STEPS_2PROC = 2


def tiny_config(num_train_steps: int):
    """A Converse-DnCNN config small enough to train a few steps in seconds (global batch 8)."""
    sys.path.insert(0, str(REPO_ROOT))
    from configs.default import base_config

    config = base_config(
        "converse_dncnn",
        "denoise",
        model_overrides={"features": 4, "num_blocks": 1},
        batch_size=8,
        num_train_steps=num_train_steps,
        lr_milestones=(2,),
        patch_size=12,
        num_threads=0,
    )
    config.learning_rate = 1e-3
    config.eval_every_steps = 0
    config.log_every_steps = 1
    config.checkpoint_every_steps = 1
    return config


def flat_params(state) -> dict[str, np.ndarray]:
    """``{'params/a/b': array, 'ema_params/...': ...}`` of a train state (host copies)."""
    import jax

    from converse_jax.train import to_host

    out = {}
    for prefix, tree in (("params", state.params), ("ema_params", state.ema_params)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            out[prefix + jax.tree_util.keystr(path)] = to_host(leaf)
    return out


def _worker(argv: list[str]) -> None:
    """Subprocess entry: ``8dev WORKDIR OUT`` or ``proc PORT PID WORKDIR OUT``."""
    mode = argv[0]
    if mode == "proc":
        port, pid, workdir, out = int(argv[1]), int(argv[2]), argv[3], argv[4]
        from converse_jax.train import maybe_initialize_distributed

        assert maybe_initialize_distributed(f"127.0.0.1:{port}", 2, pid)
        steps = STEPS_2PROC
    else:
        workdir, out = argv[1], argv[2]
        steps = STEPS_8DEV
    import jax

    from converse_jax.train import train_and_evaluate

    expected = 8 if mode == "8dev" else 2
    assert jax.device_count() == expected, jax.devices()
    state = train_and_evaluate(tiny_config(steps), workdir)
    np.savez(out, **flat_params(state))


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(JAX_PLATFORMS="cpu", **extra)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference(tmp_path: Path, steps: int) -> dict[str, np.ndarray]:
    import jax

    from converse_jax.train import train_and_evaluate

    assert jax.device_count() == 1
    return flat_params(train_and_evaluate(tiny_config(steps), tmp_path / f"ref{steps}"))


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray], atol: float) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=atol, err_msg=key)


def test_eight_simulated_devices_match_one_device(tmp_path):
    out = tmp_path / "8dev.npz"
    proc = subprocess.Popen(
        [sys.executable, __file__, "8dev", str(tmp_path / "run8"), str(out)],
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    want = _reference(tmp_path, STEPS_8DEV)  # in this process (1 device) while the other runs
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    got = dict(np.load(out))
    _assert_same(got, want, atol=1e-5)
    # The parameters did move (the comparison is not between two initialisations).
    init_like = {k: v for k, v in got.items() if k.startswith("params")}
    assert any(not np.allclose(v, got["ema_params" + k[len("params"):]]) for k, v in init_like.items())


def test_two_processes_match_and_agree(tmp_path, gcs_dir):
    port = _free_port()
    workdir = f"{gcs_dir}/run2p"  # shared by both processes, as on a pod: a bucket (the test's GCS server)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "proc", str(port), str(pid), workdir, str(tmp_path / f"p{pid}.npz")],
            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for pid in (0, 1)
    ]
    want = _reference(tmp_path, STEPS_2PROC)
    logs = []
    for p in procs:
        log, _ = p.communicate(timeout=300)
        logs.append(log)
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    p0, p1 = dict(np.load(tmp_path / "p0.npz")), dict(np.load(tmp_path / "p1.npz"))
    _assert_same(p0, p1, atol=0)  # identical on both processes
    _assert_same(p0, want, atol=1e-5)  # and equal to one process computing the whole batch
    from converse_jax.utils.paths import as_path

    run = as_path(workdir)
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())[-1] == STEPS_2PROC
    # process 0 wrote the run's records, each process its own orbax shard of the state
    assert (run / "config.json").is_file() and len((run / "metrics.jsonl").read_text().splitlines()) == STEPS_2PROC
    state = run / "checkpoints" / str(STEPS_2PROC) / "state"
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= {p.name for p in state.iterdir()}
    assert not list(tmp_path.rglob("gs:*"))


if __name__ == "__main__":
    _worker(sys.argv[1:])
