"""What a run leaves behind (metrics.jsonl, TensorBoard events, checkpoints) and the configs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from converse_jax.data import create_train_iterator
from converse_jax.models import MODELS, get_model, list_models
from converse_jax.pretrained.runs import read_run
from converse_jax.tasks import get_task
from converse_jax.train import (
    REQUIRED_FIELDS,
    Checkpointer,
    check_model_data,
    create_train_state,
    make_optimizer,
    read_metrics,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["demo", *MODELS]  # configs/demo.py and configs/zoo.py:NAME for every registered network


def load_config(path: Path, *args: str):
    """``get_config(*args)`` of a config file, imported the way ``config_flags`` does (repo root on path)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    spec = importlib.util.spec_from_file_location(f"_cfg_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)


def _train_py(workdir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, "train.py", "--config=configs/demo.py", f"--workdir={workdir}", *overrides],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """``python train.py`` with ``--config.x=y`` overrides: a tiny demo network, 6 steps."""
    workdir = tmp_path_factory.mktemp("run")
    proc = _train_py(
        workdir,
        "--config.model_overrides.features=4",
        "--config.model_overrides.num_blocks=1",
        "--config.batch_size=2",
        "--config.data.patch_size=12",
        "--config.data.num_threads=0",
        "--config.data.val_crop=24",
        "--config.data.val_max_images=2",
        "--config.data.sigma_range=(5.0, 50.0)",
        "--config.num_train_steps=6",
        "--config.lr_milestones=(4,)",
        "--config.log_every_steps=2",
        "--config.eval_every_steps=3",
        "--config.checkpoint_every_steps=3",
        "--config.keep_checkpoints=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = load_config(REPO_ROOT / "configs" / "demo.py")
    return config, workdir


def test_overrides_reach_the_run(finished_run):
    config, workdir = finished_run
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"] == config.model == "converse_dncnn"
    assert saved["num_train_steps"] == 6 and saved["batch_size"] == 2
    assert saved["model_overrides"] == {**config.model_overrides.to_dict(), "features": 4, "num_blocks": 1}
    assert saved["data"]["sigma_range"] == [5.0, 50.0] and saved["data"]["patch_size"] == 12


def test_unknown_override_is_an_error(tmp_path):
    proc = _train_py(tmp_path, "--config.no_such_field=1")
    assert proc.returncode != 0 and "no_such_field" in proc.stderr
    assert not (tmp_path / "config.json").exists()


def test_metrics_jsonl_records(finished_run):
    config, workdir = finished_run
    records = read_metrics(workdir)
    # Logged steps: every 2 steps, eval steps (3, 6) and the last one.
    assert [r["step"] for r in records] == [2, 3, 4, 6]
    for r in records:
        assert {"step", "loss", "learning_rate", "steps_per_sec"} <= set(r)
        assert np.isfinite(r["loss"]) and r["loss"] > 0
        assert r["learning_rate"] == pytest.approx(config.learning_rate * (0.5 if r["step"] > 4 else 1.0))
    evals = [r for r in records if "psnr" in r]
    assert [r["step"] for r in evals] == [3, 6]
    for r in evals:
        assert 0 < r["psnr"] < 60 and -1 <= r["ssim"] <= 1


def test_tensorboard_events_written(finished_run):
    _, workdir = finished_run
    events = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    data = b"".join(e.read_bytes() for e in events)
    for tag in (b"loss", b"learning_rate", b"psnr", b"ssim"):
        assert tag in data


def test_checkpoints_keep_latest_and_best(finished_run):
    _, workdir = finished_run
    ckpt = Checkpointer(workdir, keep=1)
    try:
        steps = ckpt.all_steps()
        assert ckpt.latest_step() == 6 and 6 in steps
        psnr = {r["step"]: r["psnr"] for r in read_metrics(workdir) if "psnr" in r}
        best = max(psnr, key=psnr.get)
        assert ckpt.best_step() == best
        assert set(steps) == {6, best}
        assert ckpt.metrics(best)["psnr"] == pytest.approx(psnr[best])
        state = ckpt.read_state(6)
        assert int(state["step"]) == 6 and set(state) >= {"params", "opt_state", "ema_params", "rng"}
    finally:
        ckpt.close()


def test_sr_runs_are_ranked_by_y_psnr(tmp_path):
    """SR: training keeps, and ``--weights WORKDIR`` loads, the best checkpoint by Y PSNR (the task's
    best_metric, the paper's SR metric), not by RGB PSNR; both read the same key."""
    assert get_task(MODELS["converse_srresnet"].task).best_metric == "psnr_y"
    state = create_train_state({"params": {"w": jnp.arange(3.0)}}, make_optimizer(1e-3, (), 0.5), jax.random.PRNGKey(0))
    data_cfg = load_config(REPO_ROOT / "configs" / "demo.py").data
    data_cfg.num_threads = 0
    it = create_train_iterator(data_cfg, global_batch_size=1, seed=0)
    (tmp_path / "config.json").write_text(json.dumps({"model": "converse_srresnet", "model_overrides": {}}))
    ckpt = Checkpointer(tmp_path, keep=1, best_metric="psnr_y")
    try:
        for step, psnr, psnr_y in [(1, 27.0, 28.0), (2, 28.0, 27.5), (3, 26.0, 27.0)]:
            ckpt.save(step, state.replace(step=jnp.int32(step)), it, {"psnr": psnr, "ssim": 0.8, "psnr_y": psnr_y})
            ckpt.wait()
        assert ckpt.best_step() == 1 and ckpt.all_steps() == [1, 3]  # step 2 has the best RGB PSNR only
    finally:
        ckpt.close()
    assert read_run(tmp_path).step == 1


def test_retention_policy_keeps_best_by_psnr(tmp_path):
    """keep=1: of checkpoints 1..5 only the latest and the highest-PSNR one survive."""
    params = {"w": jnp.arange(3.0)}
    state = create_train_state({"params": params}, make_optimizer(1e-3, (), 0.5), jax.random.PRNGKey(0))
    data_cfg = load_config(REPO_ROOT / "configs" / "demo.py").data
    data_cfg.num_threads = 0
    it = create_train_iterator(data_cfg, global_batch_size=1, seed=0)
    ckpt = Checkpointer(tmp_path, keep=1)
    try:
        for step, psnr in [(1, 20.0), (2, 27.5), (3, None), (4, 25.0), (5, None)]:
            ckpt.save(step, state.replace(step=jnp.int32(step)), it, None if psnr is None else {"psnr": psnr})
            ckpt.wait()
        assert ckpt.all_steps() == [2, 5]
        assert ckpt.best_step() == 2 and ckpt.latest_step() == 5
        assert ckpt.metrics(2) == {"psnr": 27.5} and ckpt.metrics(5) is None
        assert not ckpt.save(5, state, it)  # an existing step is not overwritten
        np.testing.assert_array_equal(ckpt.read_state(2)["params"]["w"], params["w"])
        assert int(ckpt.read_state(2)["step"]) == 2
        with pytest.raises(ValueError, match="step 3"):
            ckpt.read_state(3)
    finally:
        ckpt.close()
    with pytest.raises(ValueError, match="keep"):
        Checkpointer(tmp_path / "x", keep=0)


@pytest.mark.parametrize("name", RECIPES)
def test_config_files(name):
    """Each clone config (``configs/demo.py``, ``configs/zoo.py:NAME``) is complete and fits its network;
    a zoo recipe's ``model_overrides`` rebuild exactly the network of the record's defaults."""
    config = load_config(REPO_ROOT / "configs" / "demo.py") if name == "demo" else load_config(
        REPO_ROOT / "configs" / "zoo.py", name
    )
    missing = [f for f in REQUIRED_FIELDS if f not in config]
    assert not missing
    assert config.model in MODELS
    assert config.data.task == get_task(MODELS[config.model].task).data_task
    model = get_model(config.model, remat=config.remat, **config.model_overrides.to_dict())
    check_model_data(model, config.data)
    if name != "demo":
        assert config.model == name and model == get_model(name)
        assert config.num_train_steps == get_task(MODELS[name].task).recipe["num_train_steps"]
    assert config.batch_size > 0 and config.num_train_steps > 0
    assert list(config.lr_milestones) == sorted(config.lr_milestones)


def test_released_networks_train_as_long_as_their_release():
    """The recipe's length is the official run's: the release iteration of the weights."""
    for name in list_models(pretrained=True):
        assert load_config(REPO_ROOT / "configs" / "zoo.py", name).num_train_steps == MODELS[name].pretrained.release_iteration
