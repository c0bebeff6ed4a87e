"""Flax layers: initialisation, shapes, LayerNorm semantics, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from converse_jax import converse2d
from converse_jax.nn import Converse2D, ConverseBlock, ConverseBlockAlpha, LayerNorm, gelu


def test_converse2d_layer_init_and_forward():
    layer = Converse2D(features=6, kernel_size=5, scale=2, padding=2, padding_mode="reflect", eps=1e-3)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 9, 6))
    variables = layer.init(jax.random.PRNGKey(1), x)
    kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
    assert kernel.shape == (5, 5, 6) and bias.shape == (6,)
    # softmax over the taps of each channel: positive, sums to one
    assert np.all(np.asarray(kernel) > 0)
    np.testing.assert_allclose(np.asarray(kernel.sum(axis=(0, 1))), 1.0, rtol=1e-6)
    assert np.all(np.asarray(bias) == 0)
    assert len(set(np.asarray(kernel[0, 0]).tolist())) == 6  # channels drawn independently
    y = layer.apply(variables, x)
    lam = jax.nn.sigmoid(bias - 9.0) + 1e-3
    expected = converse2d(x, kernel, lam, scale=2, padding=2, padding_mode="reflect")
    assert y.shape == (2, 16, 18, 6)
    np.testing.assert_allclose(np.asarray(y), np.asarray(expected), rtol=1e-6)


def test_converse2d_layer_rejects_wrong_channels():
    layer = Converse2D(features=4, kernel_size=3)
    with pytest.raises(ValueError, match="expects 4 input channels"):
        layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))


def test_layernorm_matches_numpy_two_pass():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32) * 3 + 7
    ln = LayerNorm()
    variables = {"params": {"scale": np.linspace(0.5, 1.5, 5, dtype=np.float32), "bias": np.arange(5, dtype=np.float32)}}
    got = np.asarray(ln.apply(variables, x))
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    ref = (x - mean) / np.sqrt(var + 1e-5) * variables["params"]["scale"] + variables["params"]["bias"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_gelu_is_exact_erf():
    x = jnp.linspace(-3, 3, 7)
    from scipy.special import erf

    ref = 0.5 * np.asarray(x) * (1 + erf(np.asarray(x) / np.sqrt(2)))
    np.testing.assert_allclose(np.asarray(gelu(x)), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", [ConverseBlock, ConverseBlockAlpha])
def test_block_keeps_shape_and_param_count(cls):
    c, k = 8, 5
    block = cls(features=c, kernel_size=k, padding=4, padding_mode="replicate")
    x = jnp.ones((1, 10, 12, c))
    variables = block.init(jax.random.PRNGKey(0), x)
    assert block.apply(variables, x).shape == x.shape
    n = sum(v.size for v in jax.tree_util.tree_leaves(variables))
    # 2 LN (2C each) + 3 expand/project pairs + depthwise (2C·k² + 2C), as the official block
    expected = 4 * c + 2 * (c * 2 * c + 2 * c) + 2 * (2 * c * c + c) + 2 * c * k * k + 2 * c
    assert n == expected + (2 * c if cls is ConverseBlockAlpha else 0)


def test_alpha_block_is_identity_at_init():
    block = ConverseBlockAlpha(features=4)
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 6, 6, 4))
    variables = block.init(jax.random.PRNGKey(1), x)
    np.testing.assert_array_equal(np.asarray(block.apply(variables, x)), np.asarray(x))


def test_block_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"expects \(N, H, W, 8\)"):
        ConverseBlock(features=8).init(jax.random.PRNGKey(0), jnp.zeros((1, 6, 6, 4)))


@pytest.mark.parametrize("name", ["conversenet", "converse_usrnet"])
def test_a_shared_block_stack_applied_five_times_needs_the_memory_of_one(name):
    """The blocks' parameters are tied to their inputs (``converse_jax/nn/tie.py``): XLA derives
    each layer's transfer function and bias broadcasts per application instead of once for all
    five, so the compiled network's temporaries (XLA's memory analysis, nothing run) barely grow
    with the iterations (1.00x and 1.03x); untied, five iterations needed 5.0x the temporaries of one."""
    from converse_jax.models import get_model
    from converse_jax.models.registry import abstract_variables, example_inputs

    def temporaries(iterations: int) -> int:
        model = get_model(name, features=8, num_blocks=3, num_iterations=iterations)
        inputs = example_inputs(model, size=128)
        compiled = jax.jit(model.apply).lower(abstract_variables(model), *inputs).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temporaries(5) < 1.3 * temporaries(1)
