"""Paths are a user's paths: relative ones are taken from the current directory.

Each test runs from a temporary current directory (``monkeypatch.chdir`` or ``cwd=``) and gives
every path relatively: the workdir, the config file and the data folders of ``converse-jax
train`` / ``train.py``, including a run killed with SIGKILL and resumed in the same relative
workdir, and ``train_and_evaluate`` called from Python.  (The demo's relative defaults:
``tests/test_readme.py::test_demo_command``; the installed package outside the repository:
``tests/test_installed.py``.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from converse_jax.configs import config_file, get_config
from converse_jax.cli.train import resolve_config_argv

CLI = str(Path(sys.executable).with_name("converse-jax"))

CONFIG_FILE = '''\
"""A user's own config file: the packaged converse_dncnn recipe, shrunk."""
from converse_jax.configs.zoo import get_config as recipe


def get_config():
    config = recipe("converse_dncnn")
    config.model_overrides.features = 4
    config.model_overrides.num_blocks = 1
    config.batch_size = 2
    config.data.patch_size = 12
    config.data.num_threads = 0
    config.data.val_max_images = 1
    config.data.val_crop = 16
    config.lr_milestones = (1000,)
    config.log_every_steps = 1
    config.eval_every_steps = 0
    config.keep_checkpoints = 2
    return config
'''


def _env(cache: Path | None = None) -> dict[str, str]:
    """CPU JAX; with ``cache``, a compilation cache shared by the runs (only the first compiles)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    if cache is not None:
        env.update(
            JAX_COMPILATION_CACHE_DIR=str(cache),
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
            JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        )
    return env


def _user_dir(root: Path) -> Path:
    """``root`` with ``my_config.py`` and ``images/`` (two 24x24 gray PNGs): a user's folder."""
    root.mkdir(exist_ok=True)
    (root / "my_config.py").write_text(CONFIG_FILE)
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    return root


RELATIVE_DATA = ("--config.data.source=folder", "--config.data.train_dir=images", "--config.data.val_dir=images")


def test_config_names_and_relative_files_resolve(tmp_path, monkeypatch):
    monkeypatch.chdir(_user_dir(tmp_path))
    assert config_file("my_config.py") == "my_config.py"  # a file here wins over a name
    assert config_file("converse_dncnn") == f"{Path(config_file('demo')).parent / 'zoo.py'}:converse_dncnn"  # packaged
    assert resolve_config_argv(["--config", "demo"])[1] == config_file("demo")
    with pytest.raises(ValueError, match="--config: 'configs/demo.py' is neither"):
        config_file("configs/demo.py")  # the repository's path means nothing outside it
    assert get_config("demo").model_overrides.to_dict() == {"features": 16, "num_blocks": 4, "eps": 0.1}


def test_train_cli_rejects_an_unknown_config_naming_the_flag(tmp_path):
    proc = subprocess.run(
        [CLI, "train", "--config=no_such_recipe", "--workdir=run"], cwd=tmp_path, env=_env(),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--config: 'no_such_recipe' is neither a config file nor a packaged config" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_and_evaluate_with_a_relative_workdir(tmp_path, monkeypatch):
    """The library function, called from Python with a relative workdir and relative data folders."""
    from converse_jax.train import train_and_evaluate

    monkeypatch.chdir(_user_dir(tmp_path))
    namespace: dict = {}
    exec(CONFIG_FILE, namespace)
    config = namespace["get_config"]()
    config.data.source, config.data.train_dir, config.data.val_dir = "folder", "images", "images"
    config.num_train_steps, config.checkpoint_every_steps = 2, 2
    state = train_and_evaluate(config, "runs/lib")
    assert int(state.step) == 2
    assert (tmp_path / "runs" / "lib" / "checkpoints" / "2").is_dir()
    assert (tmp_path / "runs" / "lib" / "config.json").is_file()


def _latest_checkpoint(workdir: Path) -> int:
    steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
    return max(steps, default=0)


@pytest.mark.slow
def test_kill_and_resume_with_a_relative_workdir(tmp_path):
    """``converse-jax train`` killed with SIGKILL after a checkpoint, resumed by ``train.py``: all relative."""
    root = _user_dir(tmp_path / "user")
    flags = ["--config=my_config.py", "--workdir=runs/x", *RELATIVE_DATA, "--config.checkpoint_every_steps=2"]
    first = subprocess.Popen(
        [CLI, "train", *flags, "--config.num_train_steps=10000"], cwd=root, env=_env(tmp_path / "jax_cache"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while _latest_checkpoint(root / "runs" / "x") < 4:
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    saved = _latest_checkpoint(root / "runs" / "x")

    target = saved + 2
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), *flags, f"--config.num_train_steps={target}"],
        cwd=root, env=_env(tmp_path / "jax_cache"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from checkpoint {saved} in {root / 'runs' / 'x' / 'checkpoints'}" in proc.stderr
    assert _latest_checkpoint(root / "runs" / "x") == target
    assert not list(root.glob("**/*orbax-checkpoint-tmp*"))


def test_clone_configs_are_thin_files_over_the_packaged_ones():
    """``configs/*.py`` (for ``python train.py --config=configs/zoo.py:NAME`` in a clone) only
    import the packaged modules, so the two can never disagree; every network has its recipe."""
    from converse_jax.configs import config_names
    from converse_jax.models import list_models

    thin = {p.stem: p.read_text() for p in (REPO_ROOT / "configs").glob("*.py")}
    assert set(thin) == {"default", "demo", "zoo"}
    for name in ("demo", "zoo"):
        assert f"from converse_jax.configs.{name} import get_config" in thin[name]
    assert all("def " not in text for text in thin.values())
    assert config_names() == ("demo", *list_models())
