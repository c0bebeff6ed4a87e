"""TFDS preparation and reading of image folders, for real and without TensorFlow."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from converse_jax.data import create_eval_set, create_train_iterator, default_data_config
from converse_jax.utils.images import read_image
from converse_jax.data.tfds_folder import prepare_image_folder, tfds_images


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A train folder (RGB png, gray png, bmp, jpg) and a validation folder, prepared as TFDS."""
    root = tmp_path_factory.mktemp("tfds_src")
    train, val = root / "train", root / "val"
    train.mkdir()
    val.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "rgb": rng.integers(0, 256, (40, 52, 3), dtype=np.uint8),
        "gray": rng.integers(0, 256, (36, 44), dtype=np.uint8),
        "bitmap": rng.integers(0, 256, (33, 41, 3), dtype=np.uint8),
    }
    Image.fromarray(arrays["rgb"]).save(train / "rgb.png")
    Image.fromarray(arrays["gray"]).save(train / "gray.png")
    Image.fromarray(arrays["bitmap"]).save(train / "bitmap.bmp")
    Image.fromarray(arrays["rgb"]).save(train / "photo.jpg", quality=90)
    arrays["v1"] = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(arrays["v1"]).save(val / "v1.png")
    data_dir = root / "tfds"
    name = prepare_image_folder("unit_folder", {"train": train, "validation": val}, data_dir)
    return {"name": name, "data_dir": data_dir, "train": train, "arrays": arrays}


def test_prepared_without_tensorflow(prepared):
    assert prepared["name"] == "restoration_image_folder/unit_folder"
    assert "tensorflow" not in sys.modules
    files = list((prepared["data_dir"] / "restoration_image_folder" / "unit_folder").rglob("*"))
    assert any(".array_record" in f.name for f in files)


def test_read_back_equals_source_images(prepared):
    imgs = tfds_images(prepared["name"], "train", prepared["data_dir"], "image", 3)
    names = [imgs[i][0] for i in range(len(imgs))]
    assert names == ["bitmap", "gray", "photo", "rgb"]  # sorted file order is kept
    got = dict(imgs[i] for i in range(len(imgs)))
    a = prepared["arrays"]
    np.testing.assert_array_equal(got["rgb"], a["rgb"])
    np.testing.assert_array_equal(got["bitmap"], a["bitmap"])
    np.testing.assert_array_equal(got["gray"], np.repeat(a["gray"][..., None], 3, -1))
    # jpg bytes are stored unchanged: decoding gives what reading the file gives.
    np.testing.assert_array_equal(got["photo"], read_image(prepared["train"] / "photo.jpg", 3))
    gray = dict(tfds_images(prepared["name"], "train", prepared["data_dir"], "image", 1)[i] for i in range(4))
    np.testing.assert_array_equal(gray["gray"][..., 0], a["gray"])
    np.testing.assert_array_equal(gray["rgb"][..., 0], np.asarray(Image.fromarray(a["rgb"]).convert("L")))
    assert "tensorflow" not in sys.modules


def test_reprepare_reuses_and_source_pickles(prepared):
    again = prepare_image_folder("unit_folder", {"train": prepared["train"]}, prepared["data_dir"])
    assert again == prepared["name"]
    imgs = tfds_images(prepared["name"], "validation", prepared["data_dir"])
    clone = pickle.loads(pickle.dumps(imgs))
    assert len(clone) == 1
    np.testing.assert_array_equal(clone[0][1], prepared["arrays"]["v1"])


def test_pipeline_with_tfds_source(prepared):
    cfg = default_data_config("sr")
    cfg.source = "tfds"
    cfg.tfds_name = prepared["name"]
    cfg.tfds_data_dir = str(prepared["data_dir"])
    cfg.patch_size = 24
    cfg.val_crop = None
    batch = next(create_train_iterator(cfg, global_batch_size=4, seed=0))
    assert batch["input"].shape == (4, 6, 6, 3) and batch["target"].shape == (4, 24, 24, 3)
    (ev,) = create_eval_set(cfg)
    assert ev["name"] == "v1" and ev["target"].shape == (48, 48, 3) and ev["input"].shape == (12, 12, 3)


def test_errors(prepared, tmp_path):
    with pytest.raises(ValueError, match="not prepared"):
        tfds_images("div2k/bicubic_x4", "train", tmp_path, "hr")
    with pytest.raises(ValueError, match="split"):
        tfds_images(prepared["name"], "test", prepared["data_dir"])
    with pytest.raises(ValueError, match="image_key"):
        tfds_images(prepared["name"], "train", prepared["data_dir"], "hr")
    with pytest.raises(ValueError, match="cannot open"):
        tfds_images("no_such_dataset_xyz", "train", tmp_path)
    with pytest.raises(ValueError, match="name"):
        prepare_image_folder("Bad-Name", {"train": prepared["train"]}, tmp_path)
    with pytest.raises(ValueError, match="not an existing folder"):
        prepare_image_folder("missing", {"train": tmp_path / "nope"}, tmp_path)


def test_train400_subset(tmp_path):
    """Ten Train400 images (symlinked) prepared as TFDS read back bit-identical."""
    train400 = shared_path("data/trainsets/Train400")
    src = tmp_path / "t400"
    src.mkdir()
    files = sorted(train400.glob("*.png"))[:10]
    for f in files:
        (src / f.name).symlink_to(f)
    name = prepare_image_folder("train400_subset", {"train": src}, tmp_path / "tfds")
    imgs = tfds_images(name, "train", tmp_path / "tfds", "image", 1)
    assert len(imgs) == 10
    for (got_name, got), f in zip((imgs[i] for i in range(10)), files):
        assert got_name == f.stem
        np.testing.assert_array_equal(got[..., 0], np.asarray(Image.open(f)))
