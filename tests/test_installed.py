"""Installed, not cloned: the wheel, in a fresh virtual environment, used from outside the repository.

The module's fixture builds the wheel from a copy of the package's sources (``pip wheel
--no-deps --no-build-isolation``: no network), creates a fresh virtual environment that reuses
this environment's installed dependencies (a ``.pth`` file naming our ``site-packages``; the
editable install of the checkout is not seen, since ``.pth`` files of an added folder are not
read) and installs the wheel there (``pip install --no-deps --no-index``).  Everything then runs
with that environment's ``python`` and ``converse-jax``, in a folder outside the repository, with
relative paths: the functional API, the Flax layers, ``load`` of an official checkpoint,
``converse-jax convert/evaluate/restore``, the demo, ``converse-jax train`` of a zoo network by
name, and both notebooks (``QUICK=1``; pip made unable to install anything, so the install cell
must be a no-op).  This is the README's ``pip install .``.
"""

from __future__ import annotations

import csv
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path
from PIL import Image

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    venv: Path
    work: Path  # the current directory of every command: outside the repository
    env: dict[str, str]

    def run(self, *argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
        """``argv`` with the environment's ``bin/`` first on PATH, from :attr:`work`; must succeed."""
        proc = subprocess.run(argv, cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{argv}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        return proc


def _check_call(*argv: str | Path) -> None:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "converse_jax", src / "converse_jax", ignore=shutil.ignore_patterns("__pycache__"))
    _check_call(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                "-w", root / "dist", src)  # fmt: skip
    (wheel,) = (root / "dist").glob("converse_jax-*.whl")

    venv = root / "venv"
    _check_call(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    (Path(purelib.decode().strip()) / "reuse_installed_dependencies.pth").write_text("\n".join(site.getsitepackages()))
    _check_call(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)

    env = dict(os.environ, JAX_PLATFORMS="cpu", VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    # One compilation cache for all the commands: programs they share (the same network on the
    # same shapes) are compiled once.
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    for name in ("XLA_FLAGS", "PYTHONPATH"):
        env.pop(name, None)
    work = root / "outside"
    work.mkdir()
    return Installed(venv, work, env)


LIBRARY = """\
import sys
import jax, jax.numpy as jnp
import converse_jax
from converse_jax import converse2d
from converse_jax.nn import ConverseBlock
from converse_jax.pretrained import load

print("from", converse_jax.__file__)
x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
print("converse2d", converse2d(x, jnp.full((3, 3, 3), 1 / 9), 1e-3, scale=2, padding=2).shape)
block = ConverseBlock(3, kernel_size=3, padding=2)
print("ConverseBlock", block.apply(block.init(jax.random.key(1), x), x).shape)
model, variables = load("converse_dncnn.pth")
print("load", type(model).__name__, model.apply(variables, jnp.full((1, 8, 8, 1), 0.5)).shape)
"""


def test_library_and_tools_from_the_installed_wheel(installed):
    """The API, the layers, ``load``, and ``convert``/``evaluate``/``restore`` on tiny data, relative paths."""
    work = installed.work / "tools"
    work.mkdir()
    shutil.copy(shared_path("data/weights/converse_dncnn.pth"), work / "converse_dncnn.pth")
    (work / "images").mkdir()
    clean = np.asarray(Image.open(shared_path("data/testsets/Set12/01.png")).convert("L"))[96:128, 96:128]
    Image.fromarray(clean).save(work / "images" / "01.png")
    tools = Installed(installed.venv, work, installed.env)

    (work / "library.py").write_text(LIBRARY)
    out = tools.run("python", "library.py").stdout
    assert f"from {installed.venv}/lib/" in out, out  # the wheel, not the checkout
    assert "converse2d (1, 32, 32, 3)" in out and "ConverseBlock (1, 16, 16, 3)" in out
    assert "load ConverseDnCNN (1, 8, 8, 1)" in out

    assert "-> " in tools.run("converse-jax", "convert", "converse_dncnn.pth", "weights/dncnn").stdout
    tools.run("converse-jax", "evaluate", "--model", "converse_dncnn", "--weights", "weights/dncnn",
              "--data", "images", "--sigma", "25", "--out", "runs/eval", "--quiet")  # fmt: skip
    with open(work / "runs" / "eval" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["01.png", "average"] and float(rows[0]["psnr"]) > 25
    tools.run("converse-jax", "restore", "--model", "converse_dncnn", "--weights", "converse_dncnn.pth",
              "--degrade", "--quiet", "images/01.png", "restored.png")  # fmt: skip
    assert np.asarray(Image.open(work / "restored.png")).shape == (32, 32)


TINY = (
    "--config.model_overrides.features=4",
    "--config.model_overrides.num_blocks=1",
    "--config.batch_size=2",
    "--config.data.patch_size=12",
    "--config.data.num_threads=0",
    "--config.data.val_max_images=1",
    "--config.data.val_crop=32",
    "--config.num_train_steps=2",
    "--config.lr_milestones=(1,)",
    "--config.log_every_steps=1",
    "--config.eval_every_steps=2",
    "--config.checkpoint_every_steps=2",
)


def test_training_from_the_installed_wheel(installed):
    """The demo (a few steps, its relative default folders) and a zoo network trained by name."""
    work = installed.work / "training"
    work.mkdir()
    training = Installed(installed.venv, work, installed.env)
    out = training.run("python", "-m", "converse_jax.cli.demo", "--steps", "2", "--config.data.val_max_images=1").stdout
    assert "noisy 20.6" in out and "on camera" in out, out
    assert (work / "demo_out" / "denoise.png").is_file() and (work / "demo_out" / "run" / "checkpoints" / "2").is_dir()

    training.run("converse-jax", "train", "--config=converse_dncnn", "--workdir=runs/dncnn", *TINY)
    assert (work / "runs" / "dncnn" / "checkpoints" / "2").is_dir()
    assert '"model": "converse_dncnn"' in (work / "runs" / "dncnn" / "config.json").read_text()


RUN_NOTEBOOK = """\
import sys
import nbformat
from nbclient import NotebookClient

nb = nbformat.read(sys.argv[1], as_version=4)
# Last, check where the kernel found the package: the wheel in this environment.
nb.cells.append(nbformat.v4.new_code_cell(
    "import converse_jax, sys; assert converse_jax.__file__.startswith(sys.prefix), converse_jax.__file__"
))
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
print("executed", len(nb.cells), "cells")
"""

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_from_the_installed_wheel(installed, notebook, tmp_path):
    """Each notebook top to bottom (``QUICK=1``) with a kernel of the fresh environment, outside the
    repository.  pip cannot reach any index, so an install cell that installed anything would fail.
    Notebook 01 downloads the official weights by name: its cache (``CONVERSE_JAX_CACHE``) is
    pre-filled with copies of ``../shared/data/weights``, so nothing is downloaded."""
    work = installed.work / notebook.stem
    work.mkdir()
    shutil.copy(notebook, work / notebook.name)
    (work / "run_notebook.py").write_text(RUN_NOTEBOOK)
    env = dict(installed.env, QUICK="1", MPLBACKEND="Agg", PIP_NO_INDEX="1", PIP_FIND_LINKS="")
    if notebook.name.startswith("01"):
        cache = tmp_path / "cache"
        cache.mkdir()
        for name in ("converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet"):
            shutil.copy(shared_path(f"data/weights/{name}.pth"), cache / f"{name}.pth")
        env.update(CONVERSE_JAX_CACHE=str(cache), CONVERSE_JAX_WEIGHTS_URL="http://127.0.0.1:9/unreachable")
    out = Installed(installed.venv, work, env).run("python", "run_notebook.py", notebook.name, timeout=900).stdout
    assert "executed" in out
