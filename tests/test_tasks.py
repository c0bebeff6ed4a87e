"""The tasks' training degradations (through the pipeline's crop and augmentation,
:class:`converse_jax.data.TrainDegradation`) and validation examples, against independent
references (SciPy's circular convolution, the legacy seed-0 noise, MATLAB-bicubic imresize)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from converse_jax.data import TrainDegradation, default_data_config
from converse_jax.data.augment import NUM_MODES, augment
from converse_jax.protocol.degradations import uint2single
from converse_jax.protocol.imresize import imresize
from converse_jax.tasks import get_task


def denoise_example(hr, rng, *, patch_size, **options):
    return TrainDegradation("denoise", patch_size, options)(hr, rng)


def sr_example(hr, rng, *, patch_size, scale):
    return TrainDegradation("sr", patch_size, {"scale": scale})(hr, rng)


def deblur_example(hr, rng, *, patch_size, **options):
    return TrainDegradation("deblur", patch_size, options)(hr, rng)


def validation_example(img, task, index=0, **fields):
    cfg = default_data_config(task)
    cfg.update(fields)
    return get_task(task).validation_example(img, cfg, index)


@pytest.fixture(scope="module")
def hr():
    """A smooth-ish uint8 RGB test image, 48 x 60."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:60]
    base = 128 + 60 * np.sin(x / 7.0)[..., None] * np.cos(y / 5.0)[..., None] * np.array([1.0, 0.5, -0.8])
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def _is_augmented_crop(patch_u8: np.ndarray, hr: np.ndarray) -> bool:
    """Whether ``patch_u8`` equals augment(crop, m) for some square crop of ``hr`` and mode m."""
    p = patch_u8.shape[0]
    for m in range(NUM_MODES):
        # Undo the mode by trying every mode's inverse image against every crop position.
        cand = augment(patch_u8, m)
        for top in range(hr.shape[0] - p + 1):
            for left in range(hr.shape[1] - p + 1):
                if np.array_equal(hr[top : top + p, left : left + p], cand):
                    return True
    return False


def _u8(target: np.ndarray) -> np.ndarray:
    u = np.round(target.astype(np.float64) * 255)
    np.testing.assert_allclose(u, target * 255, atol=1e-3)  # target is exactly k/255
    return u.astype(np.uint8)


def test_denoise_shapes_determinism_and_noise(hr):
    ex = denoise_example(hr, np.random.default_rng(3), patch_size=32, sigma=25)
    again = denoise_example(hr, np.random.default_rng(3), patch_size=32, sigma=25)
    other = denoise_example(hr, np.random.default_rng(4), patch_size=32, sigma=25)
    assert set(ex) == {"input", "target"}
    for v in ex.values():
        assert v.shape == (32, 32, 3) and v.dtype == np.float32
    for k in ex:
        np.testing.assert_array_equal(ex[k], again[k])
    assert not np.array_equal(ex["input"], other["input"])
    assert _is_augmented_crop(_u8(ex["target"]), hr)
    # Draw order: crop (2 ints), mode (1 int), then float32 standard normals.
    rng = np.random.default_rng(3)
    rng.integers(0, 48 - 32 + 1), rng.integers(0, 60 - 32 + 1), rng.integers(0, NUM_MODES)
    noise = rng.standard_normal((32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(ex["input"], ex["target"] + np.float32(25 / 255) * noise)


def test_denoise_noise_statistics_and_no_clipping():
    flat = np.full((64, 64, 1), 250, np.uint8)
    ex = denoise_example(flat, np.random.default_rng(0), patch_size=64, sigma=50)
    diff = (ex["input"] - ex["target"]).astype(np.float64)
    assert abs(diff.std() - 50 / 255) < 0.01 and abs(diff.mean()) < 0.01
    assert ex["input"].max() > 1.0  # not clipped, as KAIR


def test_denoise_sigma_range():
    flat = np.full((64, 64, 1), 128, np.uint8)
    stds = [
        float((lambda e: (e["input"] - e["target"]).std())(
            denoise_example(flat, np.random.default_rng(s), patch_size=64, sigma=None, sigma_range=(5, 50))
        ))
        * 255
        for s in range(8)
    ]
    assert all(4 < s < 52 for s in stds)
    assert max(stds) - min(stds) > 5  # the level varies per example


def test_sr_alignment(hr):
    ex = sr_example(hr, np.random.default_rng(1), patch_size=24, scale=4)
    assert ex["target"].shape == (24, 24, 3) and ex["input"].shape == (6, 6, 3)
    assert ex["input"].dtype == np.float32 and ex["target"].dtype == np.float32
    np.testing.assert_array_equal(ex["input"], imresize(ex["target"], 1 / 4, True, precision="float32"))
    assert _is_augmented_crop(_u8(ex["target"]), hr)
    with pytest.raises(ValueError, match="multiple of scale"):
        sr_example(hr, np.random.default_rng(1), patch_size=26, scale=4)


def test_deblur_blur_and_noise(hr):
    ex = deblur_example(hr, np.random.default_rng(2), patch_size=32, kernel_size=7, noise_range=(0, 25))
    assert set(ex) == {"input", "target", "kernel"}
    k = ex["kernel"]
    assert k.shape == (7, 7) and k.dtype == np.float32 and (k >= 0).all()
    assert abs(float(k.sum()) - 1) < 1e-5
    assert ex["input"].shape == ex["target"].shape == (32, 32, 3)
    # Independent reference: SciPy's circular convolution of each channel.
    t = ex["target"].astype(np.float64)
    blurred = np.stack(
        [ndimage.convolve(t[..., c], k.astype(np.float64), mode="wrap") for c in range(3)], -1
    )
    diff = ex["input"] - blurred
    assert np.abs(diff).max() < 6 * 25 / 255  # Gaussian noise of level <= 25/255
    assert diff.std() <= 25 / 255 * 1.1


def test_deblur_noise_free_is_exact_blur(hr):
    ex = deblur_example(hr, np.random.default_rng(7), patch_size=24, kernel_size=5, noise_range=(0, 0))
    assert ex["kernel"].shape == (5, 5)
    t = ex["target"].astype(np.float64)
    k = ex["kernel"].astype(np.float64)
    blurred = np.stack([ndimage.convolve(t[..., c], k, mode="wrap") for c in range(3)], -1)
    np.testing.assert_allclose(ex["input"], blurred, atol=1e-6)
    # Kernels differ between examples.
    ex2 = deblur_example(hr, np.random.default_rng(8), patch_size=24, kernel_size=5, noise_range=(0, 0))
    assert not np.array_equal(ex["kernel"], ex2["kernel"])


def test_train_degradation_dispatch_and_checks(hr):
    deg = TrainDegradation("sr", 16, {"scale": 2})
    ex = deg(hr, np.random.default_rng(0))
    ref = sr_example(hr, np.random.default_rng(0), patch_size=16, scale=2)
    np.testing.assert_array_equal(ex["input"], ref["input"])
    with pytest.raises(ValueError, match="task"):
        TrainDegradation("inpaint", 16)
    with pytest.raises(ValueError, match="multiple of scale"):
        TrainDegradation("sr", 18, {"scale": 4})
    with pytest.raises(ValueError, match="kernel_size"):
        TrainDegradation("deblur", 16, {"kernel_size": 6})
    with pytest.raises(ValueError, match="sigma"):
        TrainDegradation("denoise", 16, {"sigma": None})
    with pytest.raises(ValueError, match="sigma_range"):
        TrainDegradation("denoise", 16, {"sigma_range": (30, 10)})
    with pytest.raises(ValueError, match="noise_range"):
        TrainDegradation("deblur", 16, {"noise_range": (0, -1)})
    with pytest.raises(ValueError, match="hr"):
        deg(hr.astype(np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="smaller than the crop"):
        TrainDegradation("denoise", 64)(hr, np.random.default_rng(0))


def test_validation_examples(hr):
    den = validation_example(hr, "denoise", sigma=15)
    noise = np.random.RandomState(0).normal(0, 15 / 255, hr.shape)
    np.testing.assert_array_equal(
        den["input"], (uint2single(hr).astype(np.float64) + noise).astype(np.float32)
    )
    np.testing.assert_array_equal(den["target"], uint2single(hr))
    with pytest.raises(ValueError, match="sigma must be set"):
        validation_example(hr, "denoise", sigma=None)

    sr = validation_example(hr[:46, :59], "sr", scale=4)
    assert sr["target"].shape == (44, 56, 3) and sr["input"].shape == (11, 14, 3)
    np.testing.assert_array_equal(sr["input"], imresize(sr["target"], 1 / 4, True, precision="float32"))

    # Deblurring: image i is blurred with random_blur_kernel(default_rng(i)), then seed-0 noise.
    db = validation_example(hr, "deblur", index=3, val_noise=0.0)
    k = db["kernel"]
    assert db["target"].shape == (48, 56, 3) and k.dtype == np.float32 and k.shape == (7, 7)
    truth = hr[:48, :56]
    blurred = np.stack([ndimage.convolve(truth[..., c].astype(np.float64), k.astype(np.float64), mode="wrap")
                        for c in range(3)], -1)  # fmt: skip
    np.testing.assert_allclose(db["input"] * 255, np.trunc(blurred), atol=1e-3)  # the truncating uint8 store
    assert not np.array_equal(k, validation_example(hr, "deblur", index=4)["kernel"])
