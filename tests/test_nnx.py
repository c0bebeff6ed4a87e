"""Flax NNX API: the native layers agree with linen (outputs and gradients, same weights), NNX
transforms work on a ConverseBlock, an optax training step lowers the loss, and networks of the
zoo convert with their weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import converse_jax.nn as linen_layers
from converse_jax.models import example_inputs, get_model
from converse_jax.nnx import Converse2D, ConverseBlock, ConverseBlockAlpha, LayerNorm, from_linen, load_nnx

X = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))

LAYERS = [
    (linen_layers.LayerNorm(), LayerNorm),
    (linen_layers.Converse2D(4, 3, scale=2, padding=2, padding_mode="reflect"), Converse2D),
    (linen_layers.ConverseBlock(4, kernel_size=3, padding=2), ConverseBlock),
    (linen_layers.ConverseBlockAlpha(4), ConverseBlockAlpha),
]


def _random_like(variables):
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    return jax.tree.unflatten(tree, [0.5 + 0.1 * jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)])


@pytest.mark.parametrize("linen, cls", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_nnx_layer_equals_linen(linen, cls):
    """Same weights (non-trivial alphas, λ, ...): identical outputs and parameter/input gradients."""
    variables = _random_like(linen.init(jax.random.key(0), X))
    module = from_linen(linen, variables)
    assert type(module) is cls
    np.testing.assert_array_equal(nnx.jit(lambda m, x: m(x))(module, X), jax.jit(linen.apply)(variables, X))

    def loss_linen(params, x):
        return jnp.sum(jnp.sin(linen.apply({"params": params}, x)))

    def loss_nnx(m, x):
        return jnp.sum(jnp.sin(m(x)))

    gp, gx = jax.jit(jax.grad(loss_linen, argnums=(0, 1)))(variables["params"], X)
    mp, mx = nnx.jit(nnx.grad(loss_nnx, argnums=(0, 1)))(module, X)
    np.testing.assert_array_equal(mx, gx)
    jax.tree.map(np.testing.assert_array_equal, nnx.to_pure_dict(mp), gp)


@pytest.mark.slow
def test_transforms_over_a_converse_block():
    block = ConverseBlock(4, rngs=nnx.Rngs(0))
    y = nnx.jit(lambda m, x: m(x))(block, X)
    np.testing.assert_allclose(y, block(X), rtol=1e-6, atol=1e-6)
    grads = nnx.jit(nnx.grad(lambda m, x: jnp.mean(m(x) ** 2)))(block, X)
    assert grads["spatial"]["kernel"].shape == (3, 3, 8)

    # vmap over a stack of 3 independently initialised blocks, one input each
    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(rngs):
        return ConverseBlock(4, rngs=rngs)

    stack = make(nnx.Rngs(0))
    xs = jnp.stack([X, 2 * X, 3 * X])
    out = nnx.jit(nnx.vmap(lambda m, x: m(x), in_axes=(0, 0)))(stack, xs)
    assert out.shape == (3, *X.shape)
    _, state = nnx.split(stack)  # block 1 of the stack, rebuilt by hand
    first = nnx.merge(nnx.graphdef(block), jax.tree.map(lambda a: a[1], state))
    np.testing.assert_allclose(out[1], nnx.jit(lambda m, x: m(x))(first, xs[1]), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_optax_training_step_lowers_the_loss():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.head = nnx.Linear(1, 4, rngs=rngs)
            self.block = ConverseBlock(4, rngs=rngs)
            self.tail = nnx.Linear(4, 1, rngs=rngs)

        def __call__(self, x):
            return self.tail(self.block(self.head(x)))

    rng = np.random.default_rng(0)
    clean = jnp.asarray(rng.uniform(0, 1, (4, 8, 8, 1)), jnp.float32)
    noisy = clean + 0.1 * jnp.asarray(rng.normal(size=clean.shape), jnp.float32)
    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean(jnp.abs(m(x) - y)))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer, noisy, clean)) for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, kwargs",
    [("converse_dncnn", dict(num_blocks=1)), ("dncnn", dict(num_layers=3)), ("converse_usrnet", dict(num_blocks=1, num_iterations=1))],
)
def test_zoo_network_as_nnx_module(name, kwargs):
    model = get_model(name, features=4, **kwargs)
    inputs = example_inputs(model, size=8)
    inputs = (jax.random.uniform(jax.random.key(3), inputs[0].shape),) + inputs[1:]
    variables = model.init(jax.random.key(0), *inputs)
    net = from_linen(model, variables)
    np.testing.assert_array_equal(nnx.jit(lambda m, *a: m(*a))(net, *inputs), jax.jit(model.apply)(variables, *inputs))
    with pytest.raises(ValueError, match="variables: "):
        from_linen(model, {"params": {"head": variables["params"]["head"]}})


@pytest.mark.slow
def test_official_weights_as_nnx(shared):
    """load_nnx of the released Converse-DnCNN gives what load + linen apply gives."""
    from converse_jax.pretrained import load

    path = shared("data/weights/converse_dncnn.pth")
    x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 1))
    model, variables = load(path)
    net = load_nnx(path)
    np.testing.assert_array_equal(nnx.jit(lambda m, x: m(x))(net, x), jax.jit(model.apply)(variables, x))
