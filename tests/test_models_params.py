"""Model zoo: parameter counts, output shapes, registry behaviour, remat equivalence, and the
baseline layers (PixelShuffle, bilinear, depthwise (transposed) convolution) against direct
numpy implementations of PyTorch's definitions."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from converse_jax.train.losses import l1_loss
from converse_jax.models import (
    MODELS,
    abstract_variables,
    circular_conv_per_sample,
    count_params,
    example_inputs,
    get_model,
    list_models,
)
from converse_jax.nn.baselines import (
    Conv2D,
    ConvBlock,
    ConvTBlock,
    DepthwiseConvTranspose2D,
    pixel_shuffle,
    upsample_bilinear,
    upsample_nearest,
)

# The zoo as registered (the records hold the parameter counts: from building the official
# PyTorch modules, golden README §3, paper_notes §2–4; conv_usrnet's is our documented construction).
ZOO = list_models()

# Small variants of the baselines for the compute tests.
SMALL = {
    "conv_dncnn": dict(features=8, num_blocks=2),
    "convt_dncnn": dict(features=8, num_blocks=2),
    "dncnn": dict(features=8, num_layers=4),
    "conv_srresnet": dict(features=8, num_blocks=1),
    "convt_srresnet": dict(features=8, num_blocks=1),
    "msrresnet": dict(features=8, num_blocks=1),
    "converseup_msrresnet": dict(features=8, num_blocks=1),
    "convnet": dict(features=8, num_blocks=2, num_iterations=2),
    "conv_usrnet": dict(features=8, num_blocks=2, num_iterations=2),
}


@functools.cache
def _abstract(name: str, remat: bool = False) -> dict:
    """Variable shapes of the default network (tracing takes ~1 s, so shared between tests)."""
    return abstract_variables(get_model(name, remat=remat))


PAPER = {  # the paper's networks and baselines (adding a network to the zoo needs no change here)
    "denoise": {"converse_dncnn", "conv_dncnn", "convt_dncnn", "dncnn"},
    "sr": {"converse_srresnet", "conv_srresnet", "convt_srresnet", "msrresnet", "converseup_msrresnet"},
    "deblur": {"conversenet", "convnet"},
    "deblur_nonblind": {"converse_usrnet", "conv_usrnet"},
}


def test_registry_lists_every_network():
    for task, names in PAPER.items():
        assert names <= set(list_models(task)), task
    released = {n for n, s in MODELS.items() if s.pretrained is not None}
    assert released == set(list_models(pretrained=True))
    assert {"converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet"} <= released
    for name in released:  # the record names the official file of the network, at its release iteration
        assert MODELS[name].pretrained.file == f"{name}.pth" and MODELS[name].pretrained.release_iteration > 500_000


@pytest.mark.parametrize("name", ZOO)
def test_param_count(name):
    """The record's count is the parameter count of the network built with its defaults."""
    spec = MODELS[name]
    variables = _abstract(name)
    assert spec.param_count is not None and count_params(variables["params"]) == spec.param_count


@pytest.mark.parametrize("name", ZOO)
def test_output_shape(name):
    """Full-size networks traced on a 12×16 input (no compute): shape and dtype."""
    spec = MODELS[name]
    model = get_model(name)
    x = jnp.zeros((2, 12, 16, spec.in_channels), jnp.float32)
    args = (x,) + example_inputs(model, batch=2)[1:]
    out = jax.eval_shape(model.apply, _abstract(name), *args)
    assert out.shape == (2, 12 * spec.scale, 16 * spec.scale, spec.in_channels)
    assert out.dtype == jnp.float32


def test_usrnet_scale_factor_and_kernel_forms():
    model = get_model("converse_usrnet")
    variables = _abstract("converse_usrnet")
    x = jnp.zeros((2, 10, 12, 3))
    out = jax.eval_shape(lambda v, k: model.apply(v, x, k, sf=3), variables, jnp.zeros((7, 7)))
    assert out.shape == (2, 30, 36, 3)
    with pytest.raises(ValueError, match="kernel must have shape"):
        jax.eval_shape(lambda v: model.apply(v, x, jnp.zeros((2, 5, 5))), variables)
    with pytest.raises(ValueError, match="sf must be a positive int"):
        jax.eval_shape(lambda v: model.apply(v, x, jnp.zeros((7, 7)), sf=0), variables)


def test_get_model_errors():
    with pytest.raises(ValueError, match="valid names: .*conversenet"):
        get_model("resnet50")
    with pytest.raises(ValueError, match="unknown hyper-parameter.*num_layerz"):
        get_model("dncnn", num_layerz=3)
    model = get_model("converse_dncnn", features=16, num_blocks=4, remat=True)
    assert (model.features, model.num_blocks, model.kernel_size, model.remat) == (16, 4, 7, True)
    with pytest.raises(ValueError, match="expects .* NHWC|x must be NHWC"):
        jax.eval_shape(get_model("conversenet").apply, _abstract("conversenet"), jnp.zeros((1, 3, 8, 8)))


def test_size_changing_block_settings_are_rejected():
    x = jnp.zeros((1, 8, 8, 4))
    with pytest.raises(ValueError, match="padding = \\(kernel_size - 1\\)/2"):
        ConvBlock(4, kernel_size=3, padding=2).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="padding = \\(kernel_size - 1\\)/2"):
        ConvTBlock(4, kernel_size=3, padding=2).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="only padding_mode='constant'"):
        ConvTBlock(4, padding_mode="circular").init(jax.random.key(0), x)


def _random_inputs(model, key, batch=2, size=8):
    x = jax.random.uniform(key, (batch, size, size, model.in_channels))
    extra = example_inputs(model, batch=batch, size=size)[1:]
    if extra:  # a random non-negative kernel per sample
        k = jax.random.uniform(jax.random.fold_in(key, 1), extra[0].shape)
        extra = (k / k.sum(axis=(1, 2), keepdims=True),)
    return (x,) + extra


@pytest.mark.parametrize("name", ZOO)
def test_remat_keeps_the_variable_tree(name):
    plain = _abstract(name)
    remat = _abstract(name, remat=True)
    assert jax.tree.map(lambda a: a.shape, remat) == jax.tree.map(lambda a: a.shape, plain)


# Tiny variants: XLA compile time dominates on CPU, and it grows with the number of blocks.
REMAT_CASES = {
    "converse_dncnn": dict(features=4, num_blocks=1),
    "dncnn": dict(features=4, num_layers=3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REMAT_CASES))
def test_remat_gives_identical_outputs_and_gradients(name):
    base = get_model(name, **REMAT_CASES[name])
    remat = get_model(name, **REMAT_CASES[name], remat=True)
    args = _random_inputs(base, jax.random.key(3))
    variables = base.init(jax.random.key(0), *args)
    train = {"train": True, "mutable": ["batch_stats"]} if name == "dncnn" else {}
    out_shape = jax.eval_shape(base.apply, variables, *args).shape
    target = jax.random.uniform(jax.random.key(4), out_shape)

    def loss(model, params):
        out = model.apply({**variables, "params": params}, *args, **train)
        return l1_loss(out[0] if train else out, target)

    # jitted: remat in op-by-op mode recompiles every checkpointed block call
    loss_b, grad_b = jax.jit(jax.value_and_grad(lambda p: loss(base, p)))(variables["params"])
    loss_r, grad_r = jax.jit(jax.value_and_grad(lambda p: loss(remat, p)))(variables["params"])
    np.testing.assert_allclose(loss_r, loss_b, rtol=1e-6)
    for gb, gr in zip(jax.tree.leaves(grad_b), jax.tree.leaves(grad_r)):
        np.testing.assert_allclose(gr, gb, rtol=1e-4, atol=1e-5 * float(jnp.abs(gb).max()) + 1e-12)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grad_b))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_variant_runs(name):
    """A small variant of every baseline initialises and runs to a finite output of the right
    shape (the released networks are run against golden outputs in test_pretrained_parity)."""
    model = get_model(name, **SMALL[name])
    args = _random_inputs(model, jax.random.key(5))
    variables = model.init(jax.random.key(0), *args)
    out = model.apply(variables, *args)
    scale = MODELS[name].scale
    assert out.shape == (2, 8 * scale, 8 * scale, model.in_channels)
    assert bool(jnp.all(jnp.isfinite(out)))
    assert float(jnp.std(out)) > 0


# ----------------------------------------------------------------------------- baseline layers


def test_pixel_shuffle_matches_torch_channel_order():
    r, c = 2, 3
    x = np.arange(1 * 2 * 3 * c * r * r, dtype=np.float32).reshape(1, 2, 3, c * r * r)
    out = np.asarray(pixel_shuffle(jnp.asarray(x), r))
    assert out.shape == (1, 4, 6, c)
    for h in range(2):
        for w in range(3):
            for ch in range(c):
                for i in range(r):
                    for j in range(r):
                        assert out[0, h * r + i, w * r + j, ch] == x[0, h, w, ch * r * r + i * r + j]


def test_upsample_bilinear_known_values_and_reference():
    # torch: F.interpolate([0, 1], scale_factor=2, mode='linear', align_corners=False) = [0, .25, .75, 1]
    x = jnp.asarray([[0.0, 1.0]]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(np.asarray(upsample_bilinear(x, 2))[0, 0, :, 0], [0, 0.25, 0.75, 1.0])

    rng = np.random.default_rng(0)
    img = rng.standard_normal((2, 5, 7, 3))
    r = 4

    def ref_1d(n):
        m = np.zeros((n * r, n))
        for i in range(n * r):
            src = max((i + 0.5) / r - 0.5, 0.0)
            i0 = min(int(np.floor(src)), n - 1)
            i1 = min(i0 + 1, n - 1)
            lam = src - i0
            m[i, i0] += 1 - lam
            m[i, i1] += lam
        return m

    expected = np.einsum("ih,nhwc,jw->nijc", ref_1d(5), img, ref_1d(7))
    out = np.asarray(upsample_bilinear(jnp.asarray(img, jnp.float32), r))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    up = np.asarray(upsample_nearest(jnp.asarray(img, jnp.float32), 2))
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(up[:, i::2, j::2], img.astype(np.float32))


def _correlate_valid(xp, w):
    """Depthwise correlation, xp (H, W, C), w (kh, kw, C)."""
    kh, kw, _ = w.shape
    h, wd = xp.shape[0] - kh + 1, xp.shape[1] - kw + 1
    out = np.zeros((h, wd, xp.shape[2]))
    for i in range(kh):
        for j in range(kw):
            out += w[i, j] * xp[i : i + h, j : j + wd]
    return out


@pytest.mark.parametrize("mode,np_mode", [("replicate", "edge"), ("circular", "wrap"), ("reflect", "reflect")])
def test_depthwise_conv_padding_modes(mode, np_mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 6, 7, 4)).astype(np.float32)
    layer = Conv2D(4, 3, padding=2, padding_mode=mode, groups=4)
    variables = layer.init(jax.random.key(0), jnp.asarray(x))
    out = np.asarray(layer.apply(variables, jnp.asarray(x)))
    w = np.asarray(variables["params"]["kernel"])[:, :, 0, :]
    b = np.asarray(variables["params"]["bias"])
    xp = np.pad(x[0], ((2, 2), (2, 2), (0, 0)), mode=np_mode)
    np.testing.assert_allclose(out[0], _correlate_valid(xp, w) + b, atol=1e-5)
    assert out.shape == (1, 8, 9, 4)


@pytest.mark.parametrize("k,stride,padding", [(5, 2, 2), (3, 1, 1), (2, 2, 0), (5, 1, 2)])
def test_depthwise_conv_transpose_is_a_scatter(k, stride, padding):
    rng = np.random.default_rng(2)
    c, h, w = 3, 4, 5
    x = rng.standard_normal((1, h, w, c)).astype(np.float32)
    layer = DepthwiseConvTranspose2D(c, k, stride=stride, padding=padding)
    variables = layer.init(jax.random.key(0), jnp.asarray(x))
    kern = np.asarray(variables["params"]["kernel"])[:, :, 0, :]
    bias = np.asarray(variables["params"]["bias"])
    oh, ow = (h - 1) * stride - 2 * padding + k, (w - 1) * stride - 2 * padding + k
    full = np.zeros(((h - 1) * stride + k, (w - 1) * stride + k, c))
    for i in range(h):
        for j in range(w):
            full[i * stride : i * stride + k, j * stride : j * stride + k] += x[0, i, j] * kern
    expected = full[padding : padding + oh, padding : padding + ow] + bias
    out = np.asarray(layer.apply(variables, jnp.asarray(x)))
    assert out.shape == (1, oh, ow, c)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_circular_conv_per_sample_matches_fft():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 8, 3))
    k = rng.standard_normal((2, 7, 7, 3))
    out = np.asarray(circular_conv_per_sample(jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32)))
    for n in range(2):
        for c in range(3):
            otf = np.zeros((9, 8))
            otf[:7, :7] = k[n, :, :, c]
            otf = np.fft.fft2(np.roll(otf, (-3, -3), axis=(0, 1)))
            expected = np.real(np.fft.ifft2(np.fft.fft2(x[n, :, :, c]) * otf))
            np.testing.assert_allclose(out[n, :, :, c], expected, atol=1e-4)
