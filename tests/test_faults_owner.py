"""Fault injection, round two (issue 22), training side: one owner per workdir, a refused run
changes nothing, ``train`` errors are one line, SIGINT saves, a full disk is one line.

Every case runs ``python -m converse_jax train`` in a subprocess, as a user types it: the demo
recipe shrunk to a Converse-DnCNN of 4 features and 1 block on 12x12 patches of four PNGs.
Two runs on one workdir are two real processes; the full disk is ``RLIMIT_FSIZE`` set in the
child (writes beyond it fail with ``EFBIG``, as they fail with ``ENOSPC`` on a full disk; no
tmpfs is mounted).  Each test asserts the one error line, the exit status and that nothing was
lost: checkpoints, ``config.json`` and the other run's files as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converse_jax.pretrained import save_variables
from converse_jax.pretrained.runs import read_run

pytestmark = pytest.mark.slow
PROG = "converse-jax train: error: "


def _images(folder: Path, count: int, side: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(side)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder with ``data/`` (four 24x24 training PNGs, one validation PNG) and a shared compilation cache."""
    root = tmp_path_factory.mktemp("owner")
    _images(root / "data" / "train", 4, 24)
    _images(root / "data" / "val", 1, 16)
    return root


def _train_argv(root: Path, workdir: str, *extra: str, steps: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "converse_jax", "train", "--config=demo", f"--steps={steps}", f"--workdir={workdir}",
        "--config.model_overrides.features=4", "--config.model_overrides.num_blocks=1", "--config.batch_size=2",
        "--config.data.patch_size=12", "--config.eval_every_steps=0", "--config.data.source=folder",
        f"--config.data.train_dir={root / 'data' / 'train'}", f"--config.data.val_dir={root / 'data' / 'val'}",
        "--config.data.val_crop=16", *extra,
    ]  # fmt: skip


def _env(root: Path, cache: bool = True) -> dict[str, str]:
    """The children's environment: CPU, and (``cache``) a compilation cache shared by this module's runs."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if cache:
        env.update(JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip
    return env


def _train(
    root: Path, workdir: str, *extra: str, steps: int = 2, cwd: Path | None = None, cache: bool = True, **popen
) -> subprocess.CompletedProcess:
    return subprocess.run(_train_argv(root, workdir, *extra, steps=steps), cwd=cwd or root, env=_env(root, cache),
                          capture_output=True, text=True, timeout=300, **popen)  # fmt: skip


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(PROG)]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}  # fmt: skip


@pytest.fixture(scope="module")
def finished(root):
    """A finished 2-step run in ``root/finished``."""
    done = _train(root, "finished")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "finished"


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--config.learning_rat=1e-3"], "--config.learning_rat: no such config field; did you mean --config.learning_rate?"),
        (["--config.batch_size=0"], "--config.batch_size must be a positive integer, got 0"),
        (["--config.learning_rate=nan"], "--config.learning_rate must be a finite number > 0, got nan"),
        (["--config.model=nope"], "--config.model: unknown model name 'nope'"),
        (["--config.data.train_dir=missing"], "--config.data.train_dir: 'missing' is not an existing folder of images"),
        (["--config.data.train_dir=empty"], "--config.data.train_dir: 'empty' contains no image files"),
        (["--config.data.patch_size=3"], "--config.data.patch_size=3: converse_dncnn cannot take 3x3 input patches "
                                         "(circular padding must not exceed the spatial size"),
        (["--config.data.train_dir=small"], "training image tiny is 8x8, smaller than --config.data.patch_size=12"),
        (["--config.model_overrides.feature=8"], "--config.model_overrides.feature: no such config field; did you mean "
                                                  "--config.model_overrides.features?"),
    ],
)  # fmt: skip
def test_train_errors_are_one_line_naming_the_field_and_write_nothing(root, extra, expected):
    (root / "empty").mkdir(exist_ok=True)
    _images(root / "small", 1, 24)  # with the tiny one: the first batch of 2 holds both
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "small" / "tiny.png")
    workdir = f"w_{abs(hash(tuple(extra)))}"
    done = _train(root, workdir, *extra)
    assert done.returncode in (1, 2), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    (line,) = _errors(done.stderr)
    assert line.startswith(PROG + expected), line
    assert not (root / workdir).exists()  # a refused run writes nothing


def test_debug_shows_the_traceback_instead(root):
    for argv in (["--debug", "train"], ["train", "--debug"]):
        command = _train_argv(root, "w_debug", "--config.batch_size=0")
        command[3:4] = argv
        done = subprocess.run(command, cwd=root, env=_env(root), capture_output=True, text=True, timeout=300)
        assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
        assert done.stderr.rstrip().endswith("ValueError: config.batch_size must be a positive integer, got 0")


def test_workdir_that_is_a_file_or_holds_converted_weights_is_refused(root, tmp_path):
    (tmp_path / "afile").write_text("mine")
    done = _train(root, "afile", cwd=tmp_path)
    assert _errors(done.stderr) == [PROG + "--workdir: afile is a file, not a folder"] and done.returncode == 1
    assert (tmp_path / "afile").read_text() == "mine"

    store = save_variables(tmp_path / "converted", {"params": {"w": np.ones(3, np.float32)}}, arch="converse_dncnn")
    before = _digest(store)
    done = _train(root, "converted", cwd=tmp_path)
    assert _errors(done.stderr) == [
        PROG + "--workdir: converted is not a training workdir (it holds converted weights (a variable store)); "
        "give a new or empty folder"
    ]
    assert _digest(store) == before and sorted(os.listdir(store)) == [
        "_CHECKPOINT_METADATA",
        "commit_success.txt",
        "variables",
    ]


def test_a_resume_with_another_network_is_refused_and_changes_nothing(root, finished):
    before = _digest(finished)
    for flag, saved in (("--config.model_overrides.features=8", "4"), ("--config.model_overrides.eps=10", "0.1")):
        done = _train(root, str(finished), flag)
        field, value = flag.split("=")
        assert _errors(done.stderr) == [
            f"{PROG}--workdir: {finished} holds checkpoints of another network: {field}={float(value) if '.' in saved else int(value)!r} "
            f"(the checkpoints: {saved}); resume with the config they were trained with, or give another --workdir"
        ], done.stderr[-2000:]
        assert _digest(finished) == before
    assert read_run(finished).model_kwargs["eps"] == 0.1  # load(RUN) rebuilds the network it trained

    done = _train(root, str(finished), steps=3)  # a longer run of the same network: resumed, recorded
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((finished / "config.json").read_text())["num_train_steps"] == 3
    assert max(int(p.name) for p in (finished / "checkpoints").iterdir()) == 3 and read_run(finished).step == 3


def test_two_runs_on_one_workdir_sigint_saves_and_a_dead_holder_does_not_block(root, tmp_path):
    argv = _train_argv(root, "two", steps=100_000)
    first = subprocess.Popen(
        argv, cwd=tmp_path, env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240  # config.json is written when the steps start
    while not (tmp_path / "two" / "config.json").is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.poll() is None, first.communicate()[1][-3000:]
    before = (tmp_path / "two" / "config.json").read_text()

    second = _train(root, "two", "--config.seed=7", cwd=tmp_path)
    (line,) = _errors(second.stderr)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert line.startswith(
        f"{PROG}--workdir: two is in use by host {os.uname().nodename}, process {first.pid}, started "
    )
    assert (tmp_path / "two" / "config.json").read_text() == before  # the second run wrote nothing

    first.send_signal(signal.SIGINT)  # Ctrl-C: saves the step it is at and exits 0, as SIGTERM does
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    saved = max(int(p.name) for p in (tmp_path / "two" / "checkpoints").iterdir() if p.name.isdigit())
    assert f"SIGINT: saved checkpoint {saved} in " in stderr

    third = subprocess.Popen(
        argv, cwd=tmp_path, env=_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lock = tmp_path / "two" / ".lock"
    while f'"pid": {third.pid}' not in lock.read_text() and third.poll() is None:
        time.sleep(0.05)
    third.kill()  # kill -9: the lock dies with its process
    third.communicate()
    resumed = _train(root, "two", cwd=tmp_path, steps=saved + 1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "two" / "checkpoints" / str(saved + 1)).is_dir()


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_a_full_disk_is_one_line_and_leaves_no_temporary_checkpoint(root, tmp_path):
    done = _train(root, "full", "--config.model_overrides.features=16", "--config.model_overrides.num_blocks=4",
                  cwd=tmp_path, cache=False, preexec_fn=_limit_file_size)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = _errors(done.stderr)
    assert line == (f"{PROG}the disk is full: a checkpoint could not be written in {tmp_path / 'full' / 'checkpoints'} "
                    "(OSError: [Errno 27] File too large); its partial files were removed, the checkpoints kept are none; "
                    "free space and run the same command to resume")  # fmt: skip
    assert not [p for p in (tmp_path / "full").rglob("*") if "orbax-checkpoint-tmp" in p.name]


def test_a_late_closed_loop_error_on_another_thread_is_dropped_and_others_are_not():
    """tensorstore reports a write that finished after orbax closed its event loop through
    ``PyErr_Print`` on its own thread (``sys.excepthook``, no header): dropped once a
    :class:`Checkpointer` exists, while the same error on the main thread and other errors print."""
    script = (
        "import ctypes, threading\n"
        "from converse_jax.train.checkpoint import Checkpointer\n"
        "import tempfile; Checkpointer(tempfile.mkdtemp(), keep=1)\n"
        "def late(message): ctypes.pythonapi.PyRun_SimpleString(f'raise RuntimeError({message!r})'.encode())\n"
        "for message in ('Event loop is closed', 'another error'):\n"
        "    thread = threading.Thread(target=late, args=(message,)); thread.start(); thread.join()\n"
        "late('Event loop is closed')  # on the main thread\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("RuntimeError")]
    assert errors == ["RuntimeError: another error", "RuntimeError: Event loop is closed"], done.stderr
