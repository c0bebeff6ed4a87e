"""Tests of the grain training iterator, the validation set and the image sources."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from converse_jax.data import (
    EMBEDDED_TRAIN,
    EMBEDDED_VALIDATION,
    create_eval_set,
    create_train_iterator,
    default_data_config,
    embedded_images,
    folder_images,
)
from converse_jax.protocol.degradations import denoise_input, uint2single
from converse_jax.utils.images import to_channels


def _small(task: str, **overrides):
    cfg = default_data_config(task)
    cfg.patch_size = {"denoise": 16, "sr": 16, "deblur": 16}[task]
    cfg.val_crop = 64
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


@pytest.fixture
def constant_folder(tmp_path):
    """Five 20x20 gray PNGs of constant values 10, 60, 110, 160, 210 (named a..e)."""
    for i, name in enumerate("abcde"):
        Image.fromarray(np.full((20, 20), 10 + 50 * i, np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.mark.parametrize(
    "task, in_shape, tgt_shape",
    [
        ("denoise", (4, 16, 16, 1), (4, 16, 16, 1)),
        ("sr", (4, 4, 4, 3), (4, 16, 16, 3)),
        ("deblur", (4, 16, 16, 3), (4, 16, 16, 3)),
    ],
)
def test_batch_shapes_and_dtypes(task, in_shape, tgt_shape):
    batch = next(create_train_iterator(_small(task), global_batch_size=4, seed=0))
    assert batch["input"].shape == in_shape and batch["target"].shape == tgt_shape
    assert set(batch) == ({"input", "target", "kernel"} if task == "deblur" else {"input", "target"})
    for v in batch.values():
        assert v.dtype == np.float32
    assert 0 <= batch["target"].min() and batch["target"].max() <= 1
    if task == "deblur":
        assert batch["kernel"].shape == (4, 7, 7)
        np.testing.assert_allclose(batch["kernel"].sum(axis=(1, 2)), 1, atol=1e-5)


def test_deterministic_given_seed_and_threads():
    cfg = _small("deblur")
    a = _take(create_train_iterator(cfg, global_batch_size=4, seed=3), 3)
    cfg.num_threads = 0
    b = _take(create_train_iterator(cfg, global_batch_size=4, seed=3), 3)
    _assert_batches_equal(a, b)
    c = next(create_train_iterator(cfg, global_batch_size=4, seed=4))
    assert not np.array_equal(a[0]["target"], c["target"])
    # Examples within a batch and across steps differ.
    assert not np.array_equal(a[0]["target"][0], a[0]["target"][1])
    assert not np.array_equal(a[0]["target"], a[1]["target"])


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_shards_concatenate_to_the_global_batch(process_count):
    cfg = _small("deblur", num_threads=0)
    steps = 3
    full = _take(create_train_iterator(cfg, global_batch_size=8, seed=11), steps)
    parts = [
        _take(
            create_train_iterator(
                cfg, global_batch_size=8, seed=11, process_index=i, process_count=process_count
            ),
            steps,
        )
        for i in range(process_count)
    ]
    for step in range(steps):
        for key in full[step]:
            local = [parts[i][step][key] for i in range(process_count)]
            assert all(x.shape[0] == 8 // process_count for x in local)
            np.testing.assert_array_equal(np.concatenate(local), full[step][key])


def test_state_resume():
    cfg = _small("sr")
    it = create_train_iterator(cfg, global_batch_size=4, seed=5, process_index=1, process_count=2)
    _take(it, 2)
    state = it.get_state()
    expected = _take(it, 3)
    fresh = create_train_iterator(cfg, global_batch_size=4, seed=5, process_index=1, process_count=2)
    fresh.set_state(state)
    _assert_batches_equal(_take(fresh, 3), expected)
    # The state is plain data (storable as JSON next to a model checkpoint).
    import json

    assert json.loads(json.dumps(state)) == state


def test_worker_processes_give_the_same_batches():
    cfg = _small("denoise", num_threads=0)
    expected = _take(create_train_iterator(cfg, global_batch_size=2, seed=1), 3)
    cfg.worker_count = 1
    it = create_train_iterator(cfg, global_batch_size=2, seed=1)
    try:
        _assert_batches_equal(_take(it, 3), expected)
    finally:
        it.close()


def test_epochs_cover_every_image_and_reshuffle(constant_folder):
    cfg = _small("denoise", source="folder", train_dir=str(constant_folder), sigma=0.0, patch_size=8)
    batches = _take(create_train_iterator(cfg, global_batch_size=5, seed=0), 4)
    values = [sorted({int(round(float(t.mean()) * 255)) for t in b["target"]}) for b in batches]
    orders = [[int(round(float(t.mean()) * 255)) for t in b["target"]] for b in batches]
    assert all(v == [10, 60, 110, 160, 210] for v in values)  # each epoch = each image once
    assert len({tuple(o) for o in orders}) > 1  # epochs are reshuffled
    np.testing.assert_array_equal(batches[0]["input"], batches[0]["target"])  # sigma 0


def test_config_errors(constant_folder):
    with pytest.raises(ValueError, match="task"):
        default_data_config("inpaint")
    cfg = _small("denoise")
    cfg.source = "web"
    with pytest.raises(ValueError, match="source"):
        create_train_iterator(cfg, global_batch_size=2, seed=0)
    cfg = _small("denoise", source="folder")
    with pytest.raises(ValueError, match="train_dir"):
        create_train_iterator(cfg, global_batch_size=2, seed=0)
    cfg = _small("denoise")
    with pytest.raises(ValueError, match="global_batch_size"):
        create_train_iterator(cfg, global_batch_size=6, seed=0, process_count=4)
    with pytest.raises(ValueError, match="process_index"):
        create_train_iterator(cfg, global_batch_size=4, seed=0, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="seed"):
        create_train_iterator(cfg, global_batch_size=4, seed=-1)
    bad = default_data_config("sr")
    bad.patch_size = 18
    with pytest.raises(ValueError, match="multiple of scale"):
        create_train_iterator(bad, global_batch_size=4, seed=0)
    import ml_collections

    unknown = ml_collections.ConfigDict({"task": "sr", "patchsize": 32})
    with pytest.raises(ValueError, match="patchsize"):
        create_eval_set(unknown)


def test_partial_config_takes_task_defaults():
    import ml_collections

    cfg = ml_collections.ConfigDict({"task": "sr", "patch_size": 8, "scale": 2, "val_max_images": 1})
    batch = next(create_train_iterator(cfg, global_batch_size=2, seed=0))
    assert batch["input"].shape == (2, 4, 4, 3)
    (ev,) = create_eval_set(cfg)
    assert ev["target"].shape == (256, 256, 3)


def test_eval_set_denoise_matches_protocol():
    cfg = _small("denoise", sigma=15.0, val_crop=None, val_max_images=2)
    ev = create_eval_set(cfg)
    assert [e["name"] for e in ev] == list(EMBEDDED_VALIDATION[:2])
    camera = embedded_images("validation", 1)[0][1]
    assert ev[0]["target"].shape == (512, 512, 1)
    np.testing.assert_array_equal(ev[0]["target"], uint2single(camera))
    np.testing.assert_array_equal(ev[0]["input"], denoise_input(camera, 15.0, seed=0))
    again = create_eval_set(cfg)
    np.testing.assert_array_equal(again[1]["input"], ev[1]["input"])


def test_eval_set_sr_and_deblur_shapes():
    sr = create_eval_set(_small("sr", scale=3, val_crop=50))
    assert len(sr) == len(EMBEDDED_VALIDATION)
    for e in sr:
        assert e["target"].shape == (48, 48, 3) and e["input"].shape == (16, 16, 3)
    db = create_eval_set(_small("deblur", val_crop=60, val_max_images=2))
    assert len(db) == 2
    for e in db:
        assert e["target"].shape == e["input"].shape == (56, 56, 3)
        assert e["kernel"].shape == (7, 7) and e["kernel"].dtype == np.float32
    assert not np.array_equal(db[0]["kernel"], db[1]["kernel"])
    db2 = create_eval_set(_small("deblur", val_crop=60, val_max_images=2))
    np.testing.assert_array_equal(db2[1]["kernel"], db[1]["kernel"])
    np.testing.assert_array_equal(db2[1]["input"], db[1]["input"])


def test_embedded_split():
    assert not set(EMBEDDED_TRAIN) & set(EMBEDDED_VALIDATION)
    assert "camera" in EMBEDDED_VALIDATION  # Set12's cameraman stays out of training
    train = embedded_images("train", 3)
    assert [n for n, _ in train] == list(EMBEDDED_TRAIN)
    for _, img in train:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert min(img.shape[:2]) >= 172
    gray = dict(embedded_images("train", 1))
    rgb = dict(train)
    assert gray["astronaut"].shape == (512, 512, 1)
    expected = np.asarray(Image.fromarray(rgb["astronaut"]).convert("L"))
    np.testing.assert_array_equal(gray["astronaut"][..., 0], expected)
    # A gray picture repeated to RGB, and back.
    np.testing.assert_array_equal(rgb["moon"][..., 0], rgb["moon"][..., 2])
    np.testing.assert_array_equal(rgb["moon"][..., :1], gray["moon"])
    with pytest.raises(ValueError, match="split"):
        embedded_images("test", 1)
    with pytest.raises(ValueError, match="channels"):
        embedded_images("train", 2)


def test_to_channels_bt601():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    # PIL 'L': (19595 R + 38470 G + 7471 B + 2**15) >> 16
    np.testing.assert_array_equal(to_channels(rgb, 1)[0, :, 0], [76, 150, 29, 18])
    rgba = np.concatenate([rgb, np.zeros((1, 4, 1), np.uint8)], -1)
    np.testing.assert_array_equal(to_channels(rgba, 3), rgb)
    with pytest.raises(ValueError, match="uint8"):
        to_channels(rgb.astype(np.float32), 1)


def test_folder_source_and_errors(constant_folder, tmp_path_factory):
    imgs = folder_images(constant_folder, 3)
    assert len(imgs) == 5 and [imgs[i][0] for i in range(5)] == list("abcde")
    name, arr = imgs[-1]
    assert name == "e" and arr.shape == (20, 20, 3) and arr.dtype == np.uint8 and arr[0, 0, 0] == 210
    with pytest.raises(IndexError):
        imgs[5]
    with pytest.raises(ValueError, match="not an existing folder"):
        folder_images(constant_folder / "missing", 1)
    empty = tmp_path_factory.mktemp("empty")
    (empty / "readme.md").write_text("x")
    with pytest.raises(ValueError, match="no image files"):
        folder_images(empty, 1)
    with pytest.raises(ValueError, match="not an existing folder"):
        folder_images(constant_folder / "a.png", 1)
    cfg = _small("sr", source="folder", val_dir=str(constant_folder), val_crop=None, scale=3)
    ev = create_eval_set(cfg)
    assert [e["name"] for e in ev] == list("abcde")
    assert ev[0]["target"].shape == (18, 18, 3) and ev[0]["input"].shape == (6, 6, 3)


def test_train400_folder():
    train400 = shared_path("data/trainsets/Train400")
    cfg = _small("denoise", source="folder", train_dir=str(train400), patch_size=40)
    batch = next(create_train_iterator(cfg, global_batch_size=4, seed=0))
    assert batch["target"].shape == (4, 40, 40, 1)
    assert len(folder_images(train400, 1)) == 400
