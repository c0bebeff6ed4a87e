"""Mixed precision: ``dtype`` (computation) / ``param_dtype`` (storage) on layers and networks,
float32 solves and LayerNorm statistics inside, and bfloat16 training with float32 state."""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from converse_jax.models import MODELS, abstract_variables, example_inputs, get_model, list_models
from converse_jax.nn import LayerNorm
from converse_jax.train import create_mesh, create_train_state, global_batch, init_variables
from converse_jax.train import make_optimizer, make_train_step, to_host

TINY = {"features": 4}


def _tiny(name: str, **kwargs):
    fields = MODELS[name].cls.__dataclass_fields__
    extra = {k: 1 for k in ("num_blocks", "num_iterations") if k in fields}
    if "num_layers" in fields:
        extra["num_layers"] = 3
    return get_model(name, **TINY, **extra, **kwargs)


def _primitive_dtypes(fn, *args) -> dict[str, set[str]]:
    """Dtypes of the first operand of every dot_general / conv / fft equation in ``fn``'s jaxpr."""
    found: dict[str, set[str]] = {}

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in ("dot_general", "conv_general_dilated", "fft"):
                found.setdefault(eqn.primitive.name, set()).add(str(eqn.invars[0].aval.dtype))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("name", list_models())
def test_bfloat16_networks_keep_float32_params_and_io(name):
    """Every network: same float32 parameter tree, float32 output for float32 input, the
    matrix products / convolutions in bfloat16 and every FFT (the Converse2D solves) in float32."""
    model, half = _tiny(name), _tiny(name, dtype=jnp.bfloat16)
    shapes = abstract_variables(model)
    assert jax.tree.map(lambda s: (s.shape, s.dtype), abstract_variables(half)) == jax.tree.map(
        lambda s: (s.shape, s.dtype), shapes
    )
    variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    inputs = example_inputs(half, size=8)
    out = jax.eval_shape(lambda v: half.apply(v, *inputs), variables)
    assert out.dtype == jnp.float32
    found = _primitive_dtypes(lambda v: half.apply(v, *inputs), variables)
    products = found.get("dot_general", set()) | found.get("conv_general_dilated", set())
    assert "bfloat16" in products, found
    assert found.get("fft", {"float32", "complex64"}) <= {"float32", "complex64"}, found


def test_layernorm_statistics_in_float32():
    """An offset input (exact in bfloat16, but its mean 16.4375 is not) normalises as in float32."""
    x = 16.0 + jnp.arange(8.0).reshape(1, 1, 1, 8) / 8
    want = LayerNorm().apply({"params": {"scale": jnp.ones(8), "bias": jnp.zeros(8)}}, x)
    got = LayerNorm(dtype=jnp.bfloat16).apply(
        {"params": {"scale": jnp.ones(8), "bias": jnp.zeros(8)}}, x.astype(jnp.bfloat16)
    )
    assert got.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want.astype(jnp.bfloat16), np.float32))


def test_param_dtype_sets_the_storage():
    variables = abstract_variables(_tiny("converse_dncnn", param_dtype=jnp.bfloat16))
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.slow
def test_bfloat16_training_lowers_the_loss_as_float32_does():
    """Same data, init and optimizer: the bfloat16-activation run (float32 parameters and Adam
    state) lowers the loss as the float32 run does."""
    mesh = create_mesh()
    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    clean = (clean + np.roll(clean, 1, 1) + np.roll(clean, 1, 2)) / 3
    batch = {"input": clean + rng.normal(0, 25 / 255, clean.shape).astype(np.float32), "target": clean}
    tx = make_optimizer(2e-3, (), 0.5)
    losses = {}
    for dtype in (None, "bfloat16"):
        model = get_model("converse_dncnn", features=8, num_blocks=1, dtype=dtype)
        variables = init_variables(model, "denoise", batch, jax.random.PRNGKey(0), mesh)
        state = create_train_state(variables, tx, jax.random.PRNGKey(1))
        step = make_train_step(model, tx, task="denoise", ema_decay=0.5, mesh=mesh)
        run = []
        for _ in range(12):
            state, metrics = step(state, global_batch(batch, mesh))
            run.append(float(to_host(metrics["loss"])))
        assert {leaf.dtype for leaf in jax.tree.leaves((state.params, state.opt_state))} <= {
            jnp.dtype(jnp.float32), jnp.dtype(jnp.int32)
        }
        losses[dtype] = np.array(run)
    f32, bf16 = losses[None], losses["bfloat16"]
    assert bf16[-1] < 0.85 * bf16[0], bf16
    np.testing.assert_allclose(bf16, f32, rtol=0.05)
