"""Fault injection on the training side: damaged checkpoints, NaN steps, kill -9 during a save,
a corrupt training image.

Every run trains the same tiny Converse-DnCNN config (6 steps on four 24x24 PNGs, a checkpoint
after every step, an evaluation at steps 3 and 6) in this process, except the run killed with
SIGKILL, which runs this file as a script in a subprocess.  A reference run goes straight through;
each fault case asserts what is kept, what is reported, and that the resumed run logs the
reference run's losses and ends with its arrays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grain
import jax
import ml_collections
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache
from PIL import Image
from test_train_resume import _flatten, _wait_for

from converse_jax.data import create_train_iterator, default_data_config
from converse_jax.train import Checkpointer, TrainingError, read_metrics, train_and_evaluate

STEPS = 6
pytestmark = pytest.mark.slow


def write_images(folder: Path, count: int, side: int, seed: int) -> Path:
    """``count`` random gray ``side`` x ``side`` PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


def tiny_config(data_root: Path, **changes) -> ml_collections.ConfigDict:
    """The tiny run: 6 steps, batch 2 of 12x12 patches, checkpoint every step (keep 6)."""
    data = default_data_config("denoise")
    data.update(source="folder", train_dir=str(data_root / "train"), val_dir=str(data_root / "val"),
                patch_size=12, num_threads=0, val_crop=16)  # fmt: skip
    config = ml_collections.ConfigDict(dict(
        model="converse_dncnn", model_overrides=dict(features=4, num_blocks=1), data=data, batch_size=2,
        num_train_steps=STEPS, learning_rate=1e-3, lr_milestones=(4,), lr_decay=0.5, grad_clip_norm=None,
        ema_decay=0.9, log_every_steps=1, eval_every_steps=3, checkpoint_every_steps=1, keep_checkpoints=6,
        seed=0, remat=False, on_nonfinite="stop",
    ))  # fmt: skip
    config.update(changes)
    return config


def arrays(workdir: Path, step: int) -> dict[str, np.ndarray]:
    ckpt = Checkpointer(workdir, keep=6)
    try:
        return dict(_flatten(ckpt.read_state(step)))
    finally:
        ckpt.close()


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        if not key.startswith(skip):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def losses(workdir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(workdir)]


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    """A persistent compilation cache for this module's runs (each run jits the same programs anew)."""
    folder = tmp_path_factory.mktemp("jax_cache")
    options = {
        "jax_compilation_cache_dir": str(folder),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    previous = {name: getattr(jax.config, name) for name in options}
    for name, value in options.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
    yield folder
    for name, value in previous.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, jax_cache):
    """(data root, pristine copy of a finished run, its losses, its final arrays)."""
    root = tmp_path_factory.mktemp("faults")
    write_images(root / "data" / "train", 4, 24, seed=0)
    write_images(root / "data" / "val", 1, 16, seed=1)
    train_and_evaluate(tiny_config(root / "data"), root / "reference")
    assert Checkpointer(root / "reference", keep=6).all_steps() == list(range(1, STEPS + 1))
    return root / "data", root / "reference", losses(root / "reference"), arrays(root / "reference", STEPS)


def _data_files(step_dir: Path) -> list[Path]:
    files = sorted((step_dir / "state" / "ocdbt.process_0" / "d").iterdir())
    assert files, step_dir
    return files


def xor_bytes(step_dir: Path) -> None:
    """Flips 64 bytes of the largest OCDBT data file so that orbax reads other, plausible values.

    The files are compressed and their tail holds index nodes, so where flipped bytes land decides
    whether a read fails, gives other numbers (the silent case this reproduces) or changes
    nothing; the first offset (5%, 10%, ... of the file) that gives other numbers is kept.
    """
    workdir, step = step_dir.parent.parent, int(step_dir.name)
    before = arrays(workdir, step)
    path = max(_data_files(step_dir), key=lambda p: p.stat().st_size)
    original = path.read_bytes()
    for percent in range(5, 100, 5):
        data = bytearray(original)
        at = len(data) * percent // 100
        data[at : at + 64] = bytes(b ^ 0xFF for b in data[at : at + 64])
        path.write_bytes(bytes(data))
        try:
            after = arrays(workdir, step)
        except Exception:  # unreadable: not the silent case
            continue
        if any(not np.array_equal(after[k], before[k]) for k in before):
            return
    raise AssertionError(f"no 64-byte flip in {path} changed the values read back")


def truncate(step_dir: Path) -> None:
    for path in _data_files(step_dir):  # (the tail of an OCDBT file may be unused: keep only its head)
        path.write_bytes(path.read_bytes()[:64])


def delete_manifest(step_dir: Path) -> None:
    (step_dir / "state" / "manifest.ocdbt").unlink()


def empty_data_json(step_dir: Path) -> None:
    (step_dir / "data" / "process_0-of-1.json").write_text("")


def bogus_data_json(step_dir: Path) -> None:
    (step_dir / "data" / "process_0-of-1.json").write_text('{"bogus": 1}')


DAMAGE = {  # step -> (damage, what the report says)
    6: (xor_bytes, "differ from their checksums"),
    5: (truncate, "arrays cannot be read"),
    4: (delete_manifest, "arrays cannot be read"),
    3: (empty_data_json, "data-iterator state process_0-of-1.json cannot be read"),
    2: (bogus_data_json, "data-iterator state process_0-of-1.json differs from its checksum"),
}


def test_damaged_checkpoints_are_reported_set_aside_and_the_run_resumes(reference, tmp_path, caplog):
    data_root, pristine, want_losses, want_arrays = reference
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    for step, (damage, _) in DAMAGE.items():
        damage(run / "checkpoints" / str(step))
    damaged = {step: tree_digest(run / "checkpoints" / str(step)) for step in DAMAGE}

    with caplog.at_level(logging.ERROR):
        train_and_evaluate(tiny_config(data_root, keep_checkpoints=2), run)

    reports = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(reports) == len(DAMAGE), reports
    for step, (_, cause) in DAMAGE.items():
        [line] = [m for m in reports if m.startswith(f"checkpoint {step} at {run / 'checkpoints' / str(step)} ")]
        assert cause in line and f"moved to {run / 'damaged_checkpoints' / str(step)}" in line, line
        assert "\n" not in line
        # Set aside byte for byte, not deleted.
        assert tree_digest(run / "damaged_checkpoints" / str(step)) == damaged[step]
    # Resumed from checkpoint 1, the newest intact one: steps 2-6 again, with the reference's losses.
    assert losses(run) == want_losses
    assert_same_arrays(arrays(run, STEPS), want_arrays)
    # Retention (keep 2) counted only intact checkpoints; the best is one of them.
    ckpt = Checkpointer(run, keep=2)
    steps, best = ckpt.all_steps(), ckpt.best_step()
    ckpt.close()
    assert steps[-2:] == [5, 6] and best in steps and set(steps) <= {3, 5, 6}, (steps, best)


def test_no_intact_checkpoint_stops_and_changes_nothing(reference, tmp_path):
    data_root, pristine, _, _ = reference
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    for step in range(1, STEPS + 1):
        (truncate if step % 2 else empty_data_json)(run / "checkpoints" / str(step))
    before = tree_digest(run / "checkpoints")
    with pytest.raises(TrainingError, match=r"no intact checkpoint in .*checkpoints \(checkpoints \[1, 2, 3, 4, 5, 6\]"):
        train_and_evaluate(tiny_config(data_root), run)
    assert tree_digest(run / "checkpoints") == before
    assert not (run / "damaged_checkpoints").exists()


def test_checkpoints_of_another_network_are_not_taken_for_damaged(reference, tmp_path):
    data_root, pristine, _, _ = reference
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    before = tree_digest(run / "checkpoints")
    config = tiny_config(data_root)
    config.model_overrides.features = 8
    saved = (run / "config.json").read_text()
    with pytest.raises(ValueError, match=r"holds checkpoints of another network: --config.model_overrides.features=8 "
                                         r"\(the checkpoints: 4\)"):  # fmt: skip
        train_and_evaluate(config, run)  # refused by its config.json, before anything is written
    assert tree_digest(run / "checkpoints") == before and (run / "config.json").read_text() == saved
    (run / "config.json").write_text(saved.replace('"features": 4', '"features": 8'))  # a config.json edited by hand
    with pytest.raises(TrainingError, match=r"checkpoint 6 at .* holds another train state than this config builds"):
        train_and_evaluate(config, run)  # the checkpoints themselves are checked too
    assert tree_digest(run / "checkpoints") == before


class NanAt(grain.DatasetIterator):
    """The real training iterator, with NaN in the input of batch ``k`` (1-based) of this run."""

    def __init__(self, parent: grain.DatasetIterator, k: int) -> None:
        super().__init__(parent)
        self._k, self._count = k, 0

    def __next__(self):
        batch = next(self._parent)
        self._count += 1
        if self._count == self._k:
            batch = {**batch, "input": np.full_like(batch["input"], np.nan)}
        return batch

    def get_state(self):
        return self._parent.get_state()

    def set_state(self, state):
        self._parent.set_state(state)


def nan_iterator(config: ml_collections.ConfigDict, k: int) -> NanAt:
    return NanAt(create_train_iterator(config.data, global_batch_size=config.batch_size, seed=config.seed), k)


def test_nan_step_stops_the_run_keeping_the_last_finite_checkpoint(reference, tmp_path):
    data_root, _, want_losses, want_arrays = reference
    config, run = tiny_config(data_root), tmp_path / "run"
    with pytest.raises(TrainingError, match=r"non-finite loss or gradient at step 5 .*the last checkpoint, 4 in "):
        train_and_evaluate(config, run, train_iterator=nan_iterator(config, 5))
    ckpt = Checkpointer(run, keep=6)
    assert ckpt.all_steps() == [1, 2, 3, 4]
    ckpt.close()
    assert losses(run) == want_losses[:4]
    # The run resumes from checkpoint 4 with the data it would have read.
    train_and_evaluate(config, run)
    assert losses(run) == want_losses
    assert_same_arrays(arrays(run, STEPS), want_arrays)


def test_nan_step_is_skipped_under_the_skip_policy(reference, tmp_path):
    data_root, _, want_losses, _ = reference
    config, run = tiny_config(data_root, on_nonfinite="skip"), tmp_path / "run"
    train_and_evaluate(config, run, train_iterator=nan_iterator(config, 5))
    records = read_metrics(run)
    assert [(r["step"], r["loss"]) for r in records[:4]] == want_losses[:4]
    assert records[4]["nonfinite_steps"] == 1 and np.isnan(records[4]["loss"])
    assert all(np.isfinite(r["loss"]) and "nonfinite_steps" not in r for r in records[5:])
    # Checkpoint 5 holds step 4's weights, optimizer state and EMA: the update was skipped.
    at_4, at_5 = arrays(run, 4), arrays(run, 5)
    assert_same_arrays(at_5, at_4, skip=("/step", "/rng"))
    assert int(at_5["/step"]) == 5
    assert all(np.isfinite(v).all() for v in arrays(run, STEPS).values())


def test_kill_during_save_resumes_from_the_last_complete_checkpoint(reference, jax_cache, tmp_path):
    data_root, _, want_losses, want_arrays = reference
    run = tmp_path / "run"
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(jax_cache),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    proc = subprocess.Popen(
        [sys.executable, __file__, str(data_root), str(run)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def saving() -> bool:  # an unfinished orbax save of step 3 or later is on disk
        folder = run / "checkpoints"
        names = os.listdir(folder) if folder.is_dir() else []
        return any(".orbax-checkpoint-tmp" in n and int(n.split(".")[0]) >= 3 for n in names)

    _wait_for(saving, proc, "a save in progress")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    complete = sorted(int(n) for n in os.listdir(run / "checkpoints") if n.isdigit())
    assert complete and complete[-1] < STEPS, complete

    train_and_evaluate(tiny_config(data_root), run)
    assert losses(run) == want_losses
    assert_same_arrays(arrays(run, STEPS), want_arrays)
    assert not [n for n in os.listdir(run / "checkpoints") if "tmp" in n]


def test_a_corrupt_training_image_is_named(reference, tmp_path):
    data_root, _, _, _ = reference
    shutil.copytree(data_root, tmp_path / "data")
    good = (tmp_path / "data" / "train" / "img0.png").read_bytes()
    (tmp_path / "data" / "train" / "broken.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(OSError, match=r"cannot decode image '.*broken\.png'"):
        train_and_evaluate(tiny_config(tmp_path / "data", num_train_steps=12), tmp_path / "run")


if __name__ == "__main__":  # the subprocess of the kill -9 test: DATA_ROOT WORKDIR
    jax.config.update("jax_default_matmul_precision", "highest")  # as conftest.py
    train_and_evaluate(tiny_config(Path(sys.argv[1])), sys.argv[2])
