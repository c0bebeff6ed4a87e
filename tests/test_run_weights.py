"""A training run is a model handle: ``load``, ``converse-jax evaluate`` and ``restore`` read a workdir.

One tiny run (Converse-DnCNN with 4 features and 1 block, 6 steps on a folder of 24x24 images,
validated every 2 steps) is trained with the real loop; evaluating the run by the official
protocol on its own validation folder must reproduce the validation PSNR its training log
recorded for the checkpoint that ``load`` picks (the best), like for like: the training
validation (``train/step.py`` ``evaluate``) and ``converse-jax evaluate`` both add the seed-0
sigma-25 noise to ``uint2single`` of the same uint8 images, round the clipped output to uint8
and compute PSNR with border 0 (see ``converse_jax/inference/evaluate.py``).
"""

from __future__ import annotations

import json
import os
import re

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from converse_jax.cli.main import main
from converse_jax.data import default_data_config
from converse_jax.pretrained import load
from converse_jax.pretrained.runs import read_run
from converse_jax.train import train_and_evaluate

pytestmark = pytest.mark.slow


def _images(folder, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        ramp = np.add.outer(np.arange(24), np.arange(24)) * 5 + rng.integers(0, 40, (24, 24))
        Image.fromarray(np.clip(ramp, 0, 255).astype(np.uint8)).save(folder / f"im{i}.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    _images(root / "train", 2, 0)
    _images(root / "val", 2, 1)
    data = default_data_config("denoise")
    data.update(source="folder", train_dir=str(root / "train"), val_dir=str(root / "val"), patch_size=16,
                num_threads=1, prefetch_buffer_size=1)
    config = ml_collections.ConfigDict(dict(
        model="converse_dncnn", model_overrides=dict(features=4, num_blocks=1), data=data, batch_size=2,
        num_train_steps=6, learning_rate=1e-2, lr_milestones=(5,), lr_decay=0.5, grad_clip_norm=None,
        ema_decay=0.5, log_every_steps=2, eval_every_steps=2, checkpoint_every_steps=3, keep_checkpoints=1,
        seed=0, remat=False))
    train_and_evaluate(config, root / "runs" / "tiny")
    return root


def _logged_psnr(workdir):
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["psnr"] for r in records if "psnr" in r}


def test_evaluating_a_run_reproduces_its_validation_psnr(run, monkeypatch, capsys):
    monkeypatch.chdir(run)  # the README's form: a relative runs/NAME
    logged = _logged_psnr(run / "runs" / "tiny")
    best = max(logged, key=logged.get)
    assert read_run("runs/tiny").step == best
    assert main(["evaluate", "--weights", "runs/tiny", "--data", "val", "--out", "eval", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "converse_dncnn sigma25: 2 images" in out  # the model's name came from the run's config
    with open("eval/results.csv") as f:
        average = f.read().splitlines()[-1].split(",")
    assert average[0] == "average"
    assert abs(float(average[1]) - logged[best]) < 0.01, (average, logged)


def test_run_weights_choices_and_mismatch(run, monkeypatch, capsys):
    monkeypatch.chdir(run)
    steps = sorted(int(p.name) for p in (run / "runs" / "tiny" / "checkpoints").iterdir() if p.name.isdigit())
    model, variables = load("runs/tiny", step=steps[-1])  # the latest, whatever the best
    assert (type(model).__name__, model.features, model.num_blocks) == ("ConverseDnCNN", 4, 1)
    latest = read_run("runs/tiny", step=steps[-1]).variables
    assert jax.tree.all(jax.tree.map(np.array_equal, variables, latest))
    with pytest.raises(ValueError, match=rf"step: 1 is not a checkpoint in .*; have {re.escape(str(steps))}"):
        load("runs/tiny", step=1)
    assert main(["restore", "--weights", "runs/tiny", "--quiet", "val/im0.png", "restored.png"]) == 0
    assert Image.open("restored.png").size == (24, 24)
    assert main(["restore", "--model", "conversenet", "--weights", "runs/tiny", "val/im0.png", "x.png"]) == 1
    err = capsys.readouterr().err
    assert "'converse_dncnn'" in err and "'conversenet'" in err and not os.path.exists("x.png")
