"""``gs://`` paths end to end against a real Cloud Storage protocol server (no cloud).

The session's ``gcp-storage-emulator`` (fixtures ``gcs_server`` / ``gcs_dir`` in ``conftest.py``)
serves the bucket; every command runs as a user types it, in a subprocess, from a temporary
current directory.  A run trained in ``gs://`` on images in the bucket, SIGKILLed and resumed,
logs the losses of an uninterrupted local run on the same images in a local folder; ``evaluate`` and ``restore`` read its weights from the bucket and write
there; ``export --out gs://`` and ``restore --exported gs://`` round-trip the artifact.  All give the
bytes the same commands give on a local disk, and nothing named ``gs:`` is ever created locally.
Without the ``gcs`` extra a ``gs://`` path fails in one line naming it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converse_jax.train.lock import WorkdirBusy, acquire
from converse_jax.utils.paths import as_path

CLI = str(Path(sys.executable).with_name("converse-jax"))
STEPS = 24
SETTINGS = {  # the demo recipe, shrunk; images from config.data.train_dir / val_dir
    "model_overrides.features": 4,
    "model_overrides.num_blocks": 1,
    "batch_size": 2,
    "data.patch_size": 12,
    "data.num_threads": 0,
    "num_train_steps": STEPS,
    "lr_milestones": "(10,)",
    "learning_rate": 0.001,
    "log_every_steps": 1,
    "eval_every_steps": 0,
    "checkpoint_every_steps": 8,
    "keep_checkpoints": 2,
    "data.source": "folder",
}
TRAIN = ["--config=demo", *(f"--config.{name}={value}" for name, value in SETTINGS.items())]


def _train_args(workdir: str, images: str) -> list[str]:
    return [
        "train",
        f"--workdir={workdir}",
        *TRAIN,
        f"--config.data.train_dir={images}",
        f"--config.data.val_dir={images}",
    ]


def _env(cache: Path) -> dict[str, str]:
    """CPU JAX, the emulator's variables (set by the fixture), one compilation cache for the runs."""
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    env.pop("XLA_FLAGS", None)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Runs the CLI with ``args``; returns its stderr (asserting exit status 0)."""
    proc = subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stderr


def _losses(workdir: str | Path) -> list[float]:
    path = as_path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["loss"] for line in path.read_text().splitlines() if line.strip()]


def _no_local_gs(*roots: Path) -> None:
    for root in roots:
        assert not [p for p in root.rglob("gs:*")], f"a local 'gs:' path was created under {root}"


def test_gs_path_without_the_gcs_extra_fails_in_one_line(tmp_path):
    blocked = "import sys; sys.modules['gcsfs'] = None; from converse_jax.cli.main import main; sys.exit(main())"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for args in (
        ["train", "--config=demo", "--workdir=gs://bkt/run"],
        ["evaluate", "--weights", "gs://bkt/run", "--data", "val", "--out", "eval"],
        ["restore", "--weights", "conversenet", "in.png", "gs://bkt/out"],
        ["export", "--weights", "gs://bkt/run", "--out", "net.jax"],
    ):
        proc = subprocess.run(
            [sys.executable, "-c", blocked, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, (args, proc.stderr[-3000:])
        assert "gs://bkt/" in lines[0] and "needs the gcs extra: pip install 'converse-jax[gcs]'" in lines[0], lines
        assert not list(tmp_path.iterdir()), f"{args[0]} wrote {list(tmp_path.iterdir())}"


def test_train_from_gs_images_kill_resume_evaluate_restore_export_on_gs(gcs_dir, tmp_path):
    env = _env(tmp_path / "jax_cache")
    work = tmp_path / "user"
    (work / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(work / "images" / f"{i}.png")
        (as_path(gcs_dir) / "images" / f"{i}.png").write_bytes((work / "images" / f"{i}.png").read_bytes())
    remote_run, remote_images = f"{gcs_dir}/run", f"{gcs_dir}/images"

    # The local reference (local images) runs alongside the gs:// run (the images' copy in the
    # bucket), which is SIGKILLed after step 10 and resumed.
    local = subprocess.Popen(
        [CLI, *_train_args("run", "images")],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = subprocess.Popen(
        [CLI, *_train_args(remote_run, remote_images)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while len(_losses(remote_run)) < 10:
        assert proc.poll() is None, (
            f"the gs:// run ended (rc {proc.returncode}) before step 10:\n{proc.stderr.read()[-3000:]}"
        )
        assert time.monotonic() < deadline, "timed out waiting for step 10 of the gs:// run"
        time.sleep(0.05)
    with pytest.raises(WorkdirBusy, match=f"in use by host {socket.gethostname()}, process {proc.pid}, "):
        acquire(remote_run)  # the running gs:// run holds its workdir's lock
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert len(_losses(remote_run)) < STEPS, "the gs:// run finished before it was killed"
    _run(_train_args(remote_run, remote_images), work, env)  # this host's killed run frees the lock at once
    _, err = local.communicate(timeout=600)
    assert local.returncode == 0, err[-3000:]
    assert _losses(remote_run) == _losses(work / "run") and len(_losses(work / "run")) == STEPS
    assert (as_path(remote_run) / "config.json").is_file() and (as_path(remote_run) / "tensorboard").is_dir()

    # evaluate, restore, export + restore --exported: weights from the bucket, outputs into it.
    _run(["evaluate", "--weights", remote_run, "--data", "images", "--out", f"{gcs_dir}/eval", "--quiet"], work, env)
    _run(["evaluate", "--weights", "run", "--data", "images", "--out", "eval", "--quiet"], work, env)
    csv_remote = (as_path(gcs_dir) / "eval" / "results.csv").read_text().splitlines()
    csv_local = (work / "eval" / "results.csv").read_text().splitlines()
    assert csv_remote[:3] == csv_local[:3] and len(csv_local) > 3  # the header and both images' scores
    _run(["restore", "--weights", remote_run, "--quiet", "images", f"{gcs_dir}/restored"], work, env)
    _run(["restore", "--weights", "run", "--quiet", "images", "restored"], work, env)
    _run(["export", "--weights", remote_run, "--out", f"{gcs_dir}/net.jax", "--shape", "20x24"], work, env)
    _run(["restore", "--exported", f"{gcs_dir}/net.jax", "--quiet", "images", f"{gcs_dir}/exported"], work, env)
    for name in ("0.png", "1.png"):
        local_png = (work / "restored" / name).read_bytes()
        assert (as_path(gcs_dir) / "restored" / name).read_bytes() == local_png
        with as_path(gcs_dir).joinpath("exported", name).open("rb") as f:
            exported = np.asarray(Image.open(f), dtype=np.int16)
        np.testing.assert_allclose(
            exported, np.asarray(Image.open(work / "restored" / name)), atol=1
        )  # float32 rounding
    _no_local_gs(work, Path.cwd())
