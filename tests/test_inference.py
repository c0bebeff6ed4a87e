"""Tests of the tiled-inference and x8 self-ensemble helpers (model-agnostic, small functions)."""

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


def _circular_box(x: jax.Array, radius: int = 2) -> jax.Array:
    """Mean over a (2r+1)^2 window with circular boundary (a local filter that wraps)."""
    shifts = range(-radius, radius + 1)
    return sum(jnp.roll(x, (i, j), axis=(1, 2)) for i in shifts for j in shifts) / (2 * radius + 1) ** 2


def _replicate_box(x: jax.Array, radius: int = 2) -> jax.Array:
    """The same mean with replicate padding at the border."""
    p = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    h, w = x.shape[1:3]
    size = 2 * radius + 1
    return sum(p[:, i : i + h, j : j + w] for i in range(size) for j in range(size)) / size**2


def _padded_solve(x: jax.Array, padding: int = 2) -> jax.Array:
    """A Converse2D-like global solve: circular padding, then a Wiener-type FFT filter, cropped."""
    p = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="wrap")
    taps = jnp.zeros(p.shape[1:3]).at[0, 0].set(0.5).at[1, 0].set(0.25).at[0, 1].set(0.25)
    f = jnp.fft.fft2(taps)
    m = (jnp.conj(f) + 1e-2) / (jnp.abs(f) ** 2 + 1e-2)
    y = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(p, axes=(1, 2)) * m[None, :, :, None], axes=(1, 2)))
    return y[:, padding:-padding, padding:-padding]


def _deblur(x: jax.Array, padding: int = 2) -> jax.Array:
    """A far-reaching Converse2D-like solve: circular padding, then the regularised inverse of a
    centred 5x5 Gaussian blur (sigma 1, lambda 1e-3; its spectrum nearly vanishes at high
    frequencies, so the inverse reaches far), cropped."""
    p = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="wrap")
    taps = jnp.zeros(p.shape[1:3]).at[:5, :5].set(_gaussian())
    f = jnp.fft.fft2(jnp.roll(taps, (-2, -2), axis=(0, 1)))
    m = (jnp.conj(f) + 1e-3) / (jnp.abs(f) ** 2 + 1e-3)
    y = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(p, axes=(1, 2)) * m[None, :, :, None], axes=(1, 2)))
    return y[:, padding:-padding, padding:-padding]


@pytest.mark.parametrize("fn", [_blur, _circular_box, _replicate_box], ids=["zero", "circular", "replicate"])
def test_local_network_is_reproduced_exactly_borders_included(fn):
    """With margin >= the receptive-field radius, every pixel equals the whole image's, whatever
    the network's padding at the image border (windows there start and end with the image's own
    first and last rows)."""
    x = _image((2, 70, 90, 3))
    whole = np.asarray(fn(jnp.asarray(x)))
    tiled = np.asarray(tiled_apply(fn, x, tile=32, margin=2))
    assert tiled.shape == whole.shape and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=2e-6)
    assert np.abs(np.asarray(tiled_apply(fn, x, tile=32, margin=1)) - whole).max() > 1e-3  # too small: inexact


def test_margins_buy_accuracy_for_global_solves():
    x = _image((1, 60, 80, 1), seed=2)
    whole = np.asarray(_padded_solve(jnp.asarray(x)))
    errors = [float(np.abs(np.asarray(tiled_apply(_padded_solve, x, tile=40, margin=m)) - whole).max())
              for m in (2, 6, 12)]
    assert errors[0] > 10 * errors[2] and errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.02, errors


def test_mirrored_windows_meet_no_jump_where_a_periodic_solve_wraps():
    """On a smooth image a window's wrap-around joins two unrelated edges, and a far-reaching
    periodic solve rings from that jump into the core; a mirrored window (the same image pixels
    followed by their mirror image, turned so that a window over the image border begins with
    the image's first row, as the whole image does) wraps each edge onto itself."""
    rows, cols = np.meshgrid(np.linspace(0, 1, 120), np.linspace(0, 1, 150), indexing="ij")
    x = (0.6 * rows + 0.3 * cols * cols + 0.02 * _image((120, 150), seed=4)).astype(np.float32)[None, :, :, None]
    whole = np.asarray(_deblur(jnp.asarray(x)))
    plain = np.abs(np.asarray(tiled_apply(_deblur, x, tile=40, margin=8)) - whole)
    mirrored = np.abs(np.asarray(tiled_apply(_deblur, x, tile=80, margin=8, mirror=True)) - whole)
    print(f"mean |tiled - whole|: plain {plain.mean():.2e}, mirrored {mirrored.mean():.2e}")  # 9.7e-4, 5.8e-5
    assert mirrored.mean() < plain.mean() / 10, (plain.mean(), mirrored.mean())
    border = np.r_[0:8, 112:120]  # rows whose windows reach over the image border
    assert mirrored[:, border].mean() < plain[:, border].mean() / 10


@pytest.mark.parametrize("tile", [24, 25])
def test_mirror_reproduces_a_local_circular_network_exactly(tile):
    """The windows are periodic ranges of the image, so a network that wraps around the image
    border is reproduced at the border too; an odd tile holds one pixel more than its mirror."""
    shapes = []

    def recorder(t: jax.Array) -> jax.Array:
        shapes.append(t.shape)
        return _circular_box(jnp.repeat(jnp.repeat(t, 2, axis=1), 2, axis=2), 2)

    x = _image((1, 50, 37, 2), seed=5)
    tiled = np.asarray(tiled_apply(recorder, x, tile=tile, margin=2, scale=2, mirror=True))
    whole = np.asarray(recorder(jnp.asarray(x)))
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=2e-6)
    assert set(shapes[:-1]) == {(1, tile, tile, 2)}, shapes


def test_every_call_sees_the_same_window_shape():
    shapes = []

    def recorder(t: jax.Array) -> jax.Array:
        shapes.append(t.shape)
        return _blur(t)

    for shape, batch_tiles, window in [((1, 70, 90, 2), 1, (16, 16)), ((1, 20, 50, 2), 3, (16, 16)),
                                       ((2, 5, 26, 2), 2, (5, 16))]:
        shapes.clear()
        out = tiled_apply(recorder, _image(shape), tile=16, margin=4, batch_tiles=batch_tiles)
        assert out.shape == shape
        assert set(shapes) == {(batch_tiles * shape[0], *window, 2)}, shapes


def test_tiled_apply_compiles_the_network_once():
    """Every window of images at least a tile large has one shape: the network is traced once."""

    @jax.jit
    @chex.assert_max_traces(n=1)
    def blur(t: jax.Array) -> jax.Array:
        return _depthwise(t, jnp.asarray(_gaussian()))

    for shape in [(1, 70, 90, 2), (1, 20, 50, 2), (1, 16, 17, 2)]:
        assert tiled_apply(blur, _image(shape), tile=16, margin=4).shape == shape


def test_batching_tiles_does_not_change_the_result():
    x = _image((1, 45, 61, 1), seed=3)
    one = np.asarray(tiled_apply(_padded_solve, x, tile=16, margin=3, batch_tiles=1))
    four = np.asarray(tiled_apply(_padded_solve, x, tile=16, margin=3, batch_tiles=4))  # last call filled up
    np.testing.assert_allclose(four, one, rtol=0, atol=1e-6)


def test_image_smaller_than_the_tile_is_never_padded():
    """One window of the image's own shape: even a global network gives its whole-image result."""
    x = _image((1, 12, 14, 1))
    out = tiled_apply(_padded_solve, x, tile=16, margin=4)
    np.testing.assert_allclose(np.asarray(out), np.asarray(_padded_solve(jnp.asarray(x))), rtol=0, atol=1e-6)


def test_scale_two_nearest_upsampling_is_exact():
    mix = jnp.asarray(np.array([[1.0, 0.5, -1.0], [0.25, 2.0, 0.0]], np.float32))  # 2 -> 3 channels

    def upsample(t: jax.Array) -> jax.Array:
        return _circular_box(jnp.repeat(jnp.repeat(t, 2, axis=1), 2, axis=2), 1) @ mix

    x = _image((2, 37, 29, 2), seed=1)
    tiled = np.asarray(tiled_apply(upsample, x, tile=12, margin=1, scale=2, batch_tiles=2))
    whole = np.asarray(upsample(jnp.asarray(x)))
    assert tiled.shape == (2, 74, 58, 3)
    np.testing.assert_allclose(tiled, whole, rtol=1e-6, atol=1e-6)


def test_progress_bar(capsys):
    tiled_apply(_blur, _image((1, 30, 30, 1)), tile=16, margin=4, progress=True)
    assert "tiles" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": 4, "margin": 0}, "tile"),
        ({"tile": 16.0, "margin": 0}, "tile"),
        ({"tile": 16, "margin": 8}, "margin"),
        ({"tile": 16, "margin": 4, "mirror": True}, "half the mirrored windows' 8 px"),
        ({"tile": 16, "margin": -1}, "margin"),
        ({"tile": 16, "margin": 4, "scale": 0}, "scale"),
        ({"tile": 16, "margin": 4, "batch_tiles": 0}, "batch_tiles"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiled_apply(_blur, _image((1, 20, 20, 1)), **kwargs)


def test_bad_input_and_fn_output_shapes():
    with pytest.raises(ValueError, match="x: expected an NHWC"):
        tiled_apply(_blur, _image((20, 20, 1)), tile=16, margin=4)
    with pytest.raises(ValueError, match="fn: returned shape"):
        tiled_apply(_blur, _image((1, 20, 20, 1)), tile=16, margin=4, scale=2)  # fn does not upscale
    with pytest.raises(ValueError, match="fn: expected a callable"):
        tiled_apply("blur", _image((1, 20, 20, 1)), tile=16, margin=4)
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
