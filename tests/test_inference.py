"""Tests of the tiled-inference and x8 self-ensemble helpers."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from converse_jax.inference.tiling import self_ensemble_x8, tiled_apply


def _gaussian(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


@jax.jit
def _depthwise(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Depthwise 2-D cross-correlation, zero 'SAME' padding; x NHWC, kernel (k, k)."""
    c = x.shape[-1]
    k = jnp.tile(kernel[:, :, None, None], (1, 1, 1, c))  # HWIO with groups = C
    return jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c
    )


def _blur(x: jax.Array) -> jax.Array:
    return _depthwise(x, jnp.asarray(_gaussian()))


def _image(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def _psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def _inner_edge_band(size: int, tile: int, overlap: int, radius: int) -> np.ndarray:
    """Pixels within ``radius`` of an edge of some window that is not the image border."""
    band = np.zeros(size, bool)
    starts = [0] if size <= tile else [*range(0, size - tile, tile - overlap), size - tile]
    for s in starts:
        if s > 0:
            band[s : s + radius] = True
        if s + tile < size:
            band[s + tile - radius : s + tile] = True
    return band


def test_tiled_blur_matches_whole_image_away_from_seams():
    x = _image((2, 70, 90, 3))
    tile, overlap, radius = 32, 12, 2
    whole = np.asarray(_blur(jnp.asarray(x)))
    tiled = np.asarray(tiled_apply(_blur, x, tile=tile, overlap=overlap))
    assert tiled.shape == whole.shape and tiled.dtype == np.float32
    seam = _inner_edge_band(70, tile, overlap, radius)[:, None] | _inner_edge_band(90, tile, overlap, radius)[None, :]
    assert seam.any() and (~seam).sum() > seam.sum()
    np.testing.assert_allclose(tiled[:, ~seam], whole[:, ~seam], rtol=0, atol=2e-6)
    assert np.abs(tiled - whole).max() > 1e-4  # the seams really are inexact (the check above is not vacuous)
    assert _psnr(tiled, whole) > 60.0  # blending hides the seam errors almost entirely


def test_every_call_sees_the_same_tile_shape():
    shapes = []

    def recorder(t: jax.Array) -> jax.Array:
        shapes.append(t.shape)
        return _blur(t)

    for shape, batch_tiles in [((1, 70, 90, 2), 1), ((1, 20, 50, 2), 3), ((2, 5, 6, 2), 2)]:
        shapes.clear()
        out = tiled_apply(recorder, _image(shape), tile=16, overlap=4, batch_tiles=batch_tiles)
        assert out.shape == shape
        assert set(shapes) == {(batch_tiles * shape[0], 16, 16, 2)}, shapes


def test_tiled_apply_compiles_the_network_once():
    """Every tile has one shape, so the jitted network is traced once for images of any size."""

    @jax.jit
    @chex.assert_max_traces(n=1)
    def blur(t: jax.Array) -> jax.Array:
        return _depthwise(t, jnp.asarray(_gaussian()))

    for shape in [(1, 70, 90, 2), (1, 20, 50, 2), (1, 5, 6, 2)]:
        assert tiled_apply(blur, _image(shape), tile=16, overlap=4).shape == shape


def test_batching_tiles_does_not_change_the_result():
    x = _image((1, 45, 61, 1), seed=3)
    one = np.asarray(tiled_apply(_blur, x, tile=16, overlap=6, batch_tiles=1))
    four = np.asarray(tiled_apply(_blur, x, tile=16, overlap=6, batch_tiles=4))  # 20 windows: last call padded
    np.testing.assert_allclose(four, one, rtol=0, atol=1e-6)


def test_image_smaller_than_tile_is_exact_for_identity():
    x = _image((1, 5, 6, 1))
    out = tiled_apply(lambda t: t, x, tile=8, overlap=2)
    np.testing.assert_array_equal(np.asarray(out), x)  # one window, weight exactly 1, padding cropped


def test_scale_two_nearest_upsampling_is_exact():
    mix = jnp.asarray(np.array([[1.0, 0.5, -1.0], [0.25, 2.0, 0.0]], np.float32))  # 2 -> 3 channels

    def upsample(t: jax.Array) -> jax.Array:
        return jnp.repeat(jnp.repeat(t, 2, axis=1), 2, axis=2) @ mix

    x = _image((2, 37, 29, 2), seed=1)
    tiled = np.asarray(tiled_apply(upsample, x, tile=12, overlap=5, scale=2, batch_tiles=2))
    whole = np.asarray(upsample(jnp.asarray(x)))
    assert tiled.shape == (2, 74, 58, 3)
    np.testing.assert_allclose(tiled, whole, rtol=1e-6, atol=1e-6)


def test_progress_bar(capsys):
    tiled_apply(_blur, _image((1, 30, 30, 1)), tile=16, overlap=4, progress=True)
    assert "tiles" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": 4, "overlap": 0}, "tile"),
        ({"tile": 16.0, "overlap": 0}, "tile"),
        ({"tile": 16, "overlap": 16}, "overlap"),
        ({"tile": 16, "overlap": -1}, "overlap"),
        ({"tile": 16, "overlap": 4, "scale": 0}, "scale"),
        ({"tile": 16, "overlap": 4, "batch_tiles": 0}, "batch_tiles"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiled_apply(_blur, _image((1, 20, 20, 1)), **kwargs)


def test_bad_input_and_fn_output_shapes():
    with pytest.raises(ValueError, match="x: expected an NHWC"):
        tiled_apply(_blur, _image((20, 20, 1)), tile=16, overlap=4)
    with pytest.raises(ValueError, match="fn: returned shape"):
        tiled_apply(_blur, _image((1, 20, 20, 1)), tile=16, overlap=4, scale=2)  # fn does not upscale
    with pytest.raises(ValueError, match="fn: expected a callable"):
        tiled_apply("blur", _image((1, 20, 20, 1)), tile=16, overlap=4)
    with pytest.raises(ValueError, match="x: expected an NHWC"):
        self_ensemble_x8(_blur, _image((20, 20)))


def test_x8_of_identity_and_isotropic_blur_equals_fn():
    x = _image((2, 12, 17, 3), seed=4)  # non-square: odd rotations see (17, 12)
    np.testing.assert_array_equal(np.asarray(self_ensemble_x8(lambda t: t, x)), x)
    np.testing.assert_allclose(np.asarray(self_ensemble_x8(_blur, x)), np.asarray(_blur(jnp.asarray(x))),
                               rtol=0, atol=1e-6)


def test_x8_of_anisotropic_filter_equals_filter_with_symmetrised_kernel():
    kernel = np.random.default_rng(5).standard_normal((3, 3)).astype(np.float32)
    kernel[0, 2] = 4.0  # clearly not symmetric under any flip or rotation
    group = [np.rot90(k, r) for k in (kernel, kernel[:, ::-1]) for r in range(4)]
    symmetrised = np.mean(group, axis=0).astype(np.float32)
    x = _image((1, 10, 15, 2), seed=6)
    fn = lambda t: _depthwise(t, jnp.asarray(kernel))  # noqa: E731
    got = np.asarray(self_ensemble_x8(fn, x))
    want = np.asarray(_depthwise(jnp.asarray(x), jnp.asarray(symmetrised)))
    assert np.abs(np.asarray(fn(jnp.asarray(x))) - want).max() > 0.1  # the ensemble really changes fn
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_x8_handles_upscaling_fn():
    x = _image((1, 6, 9, 1), seed=7)
    up = lambda t: jnp.repeat(jnp.repeat(t, 3, axis=1), 3, axis=2)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(self_ensemble_x8(up, x)), np.asarray(up(jnp.asarray(x))))
