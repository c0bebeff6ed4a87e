"""The zoo is open: a task added in one place, and a user's network in one file outside the package.

* A toy task (``undim``: restore an image dimmed by a factor) is one :class:`Task` subclass
  registered here, with a toy network of that task registered by a plain call; the real loop
  trains it (its data fields, training degradation and recipe are the task's), and ``converse-jax
  evaluate`` of the run reproduces the validation PSNR the training logged: the two share one
  scoring loop (``converse_jax.tasks.score_images``) and the task's one test degradation.
* ``examples/my_network.py`` and ``examples/my_config.py`` copied to a folder outside the
  repository and put on ``PYTHONPATH``: ``converse-jax train``, ``evaluate``/``restore``/``export
  --weights RUN``, ``restore --exported`` and ``converse_jax.pretrained.load(RUN)`` run as
  subprocesses, as a user types them; without ``PYTHONPATH`` the tools name the module they
  cannot import, in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import flax.linen as nn
import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path
from PIL import Image

from converse_jax.cli.main import main
from converse_jax.configs.zoo import get_config
from converse_jax.data import create_train_iterator
from converse_jax.models import MODELS, register_model
from converse_jax.protocol import uint2single
from converse_jax.tasks import TASKS, Task, register_task
from converse_jax.train import train_and_evaluate
from converse_jax.utils.validate import check_level_range

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("converse-jax"))


@dataclass(frozen=True)
class Undimming(Task):
    """Toy task: the image dimmed by ``factor`` (test) or by a factor drawn from ``data.factor_range`` (training)."""

    factor: float = 0.5
    data_fields: ClassVar = {"channels": 1, "patch_size": 16, "factor_range": (0.4, 0.6)}

    def degrade(self, img, *, scale=1, sigma=None, kernel=None, seed=0, crop=True):
        self.noise_level(sigma)
        return img, uint2single(img) * np.float32(self.factor)

    def train_options(self, cfg):
        low, high = check_level_range(cfg["factor_range"], "factor_range")
        return {"low": low, "high": high}

    def train_example(self, target, rng, *, low, high):
        return {"input": target * np.float32(rng.uniform(low, high))}


class ToyNet(nn.Module):
    """One 3x3 convolution plus the input."""

    in_channels: int = 1

    @nn.compact
    def __call__(self, x):
        return x + nn.Conv(self.in_channels, (3, 3))(x)


def _images(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        ramp = np.add.outer(np.arange(24), np.arange(24)) * 5 + rng.integers(0, 40, (24, 24))
        Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The toy task and network registered (removed afterwards), and a 6-step run of the network."""
    register_task(Undimming("undim", input_name="dimmed", recipe={"batch_size": 2, "num_train_steps": 6,
                                                                "lr_milestones": (5,)}))  # fmt: skip
    register_model("toy_net", ToyNet, task="undim", in_channels=1, description="toy: one conv")
    try:
        root = tmp_path_factory.mktemp("toy")
        config = get_config("toy_net")
        config.data.update(source="folder", train_dir=str(_images(root / "train", 2, 0)),
                           val_dir=str(_images(root / "val", 2, 1)), num_threads=0)  # fmt: skip
        config.update(learning_rate=1e-2, ema_decay=0.5, log_every_steps=2, eval_every_steps=2,
                      checkpoint_every_steps=3, keep_checkpoints=1)  # fmt: skip
        train_and_evaluate(config, root / "run")
        yield root, config
    finally:
        del MODELS["toy_net"], TASKS["undim"]


def test_a_toy_task_trains_and_evaluates_through_the_task(toy_run, capsys):
    root, config = toy_run
    assert (config.batch_size, config.num_train_steps, config.data.factor_range) == (2, 6, (0.4, 0.6))
    batch = next(create_train_iterator(config.data, global_batch_size=2, seed=0))
    ratio = batch["input"] / batch["target"]  # the task's training degradation: one factor per example
    assert np.allclose(ratio, ratio[:, :1, :1, :], atol=1e-5) and ((0.4 <= ratio) & (ratio <= 0.6)).all()
    records = [json.loads(line) for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["psnr"] for r in records if "psnr" in r}
    assert sorted(logged) == [2, 4, 6]
    out = root / "eval"
    assert main(["evaluate", "--weights", str(root / "run"), "--data", str(root / "val"), "--out", str(out), "--quiet"]) == 0
    assert "toy_net undim: 2 images" in capsys.readouterr().out
    average = (out / "results.csv").read_text().splitlines()[-1].split(",")
    assert average[0] == "average" and abs(float(average[1]) - max(logged.values())) < 0.01, (average, logged)
    assert main(["evaluate", "--weights", str(root / "run"), "--data", str(root / "val"), "--out", str(out),
                 "--sigma", "5"]) == 1  # fmt: skip
    assert "--sigma: toy_net (undim) adds no noise" in capsys.readouterr().err


def _run(args: list[str], cwd: Path, pythonpath: Path | None, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip
    env.pop("XLA_FLAGS", None)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_users_network_in_one_file_works_with_every_tool(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    for name in ("my_network.py", "my_config.py"):
        shutil.copy(REPO_ROOT / "examples" / name, user / name)
    shutil.copytree(shared_path("data/testsets/Set12"), user / "test", ignore=lambda d, names: sorted(names)[2:])
    cache = tmp_path / "jax_cache"

    def ok(*args, pythonpath=user):
        proc = _run(list(args), user, pythonpath, cache)
        assert proc.returncode == 0, (args, proc.stderr[-3000:])
        return proc

    ok(CLI, "train", "--config=my_config.py", "--workdir=runs/mine", "--config.num_train_steps=2",
       "--config.batch_size=2", "--config.data.patch_size=16", "--config.data.num_threads=0",
       "--config.data.val_max_images=1", "--config.data.val_crop=32", "--config.eval_every_steps=2",
       "--config.checkpoint_every_steps=2", "--config.log_every_steps=1")  # fmt: skip
    assert json.loads((user / "runs/mine/config.json").read_text())["model_module"] == "my_network"
    evaluated = ok(CLI, "evaluate", "--weights", "runs/mine", "--data", "test", "--out", "eval", "--quiet")
    assert "my_network sigma25: 2 images" in evaluated.stdout
    ok(CLI, "restore", "--model", "my_network", "--weights", "runs/mine", "--quiet", "--tile", "64", "test/01.png", "restored.png")
    ok(CLI, "export", "--weights", "runs/mine", "--out", "mine.jax", "--tile", "64")
    ok(CLI, "restore", "--exported", "mine.jax", "--quiet", "test/01.png", "exported.png")
    a, b = (np.asarray(Image.open(user / name), np.int16) for name in ("restored.png", "exported.png"))
    assert a.shape == b.shape == (256, 256) and np.abs(a - b).max() <= 1  # the same 64-px tiles, in and out of Flax
    loaded = ok(sys.executable, "-c", "from converse_jax.pretrained import load; m, v = load('runs/mine'); "
                "print(type(m).__name__, m.features)")  # fmt: skip
    assert loaded.stdout.split() == ["MyNetwork", "16"]

    lost = _run([CLI, "evaluate", "--weights", "runs/mine", "--data", "test", "--out", "eval2"], user, None, cache)
    assert lost.returncode == 1 and len(lost.stderr.strip().splitlines()) == 1, lost.stderr
    assert lost.stderr.startswith("converse-jax evaluate: error: --weights: runs/mine/config.json: ")
    assert "network 'my_network' is defined in module 'my_network', which cannot be imported" in lost.stderr
    assert "PYTHONPATH" in lost.stderr and not (user / "eval2").exists()
