"""ConverseBlock / ConverseBlockAlpha against the official blocks (``golden/blocks.npz``):
forward output, input gradient and every parameter gradient, in float64 and float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import SHARED, shared_path
from converse_jax.nn import ConverseBlock, ConverseBlockAlpha
from golden_op import load, nhwc

GOLDEN = "golden/blocks.npz"


def _config_keys() -> list[str]:
    path = SHARED / GOLDEN
    return [str(k) for k in load(path)["config_keys"]] if path.exists() else ["<golden missing>"]


def _dense(w: np.ndarray) -> np.ndarray:
    """(out, in, 1, 1) 1×1 conv weight -> (in, out) Dense kernel."""
    return w[:, :, 0, 0].T


# Flax parameter path -> (torch name, layout conversion)
_MAPPING = {
    ("norm1", "scale"): ("conv1.0.weight", np.asarray),
    ("norm1", "bias"): ("conv1.0.bias", np.asarray),
    ("expand1", "kernel"): ("conv1.1.weight", _dense),
    ("expand1", "bias"): ("conv1.1.bias", np.asarray),
    ("spatial", "kernel"): ("conv1.3.weight", lambda w: np.transpose(w[0], (1, 2, 0))),
    ("spatial", "bias"): ("conv1.3.bias", lambda b: b.reshape(-1)),
    ("project1", "kernel"): ("conv1.5.weight", _dense),
    ("project1", "bias"): ("conv1.5.bias", np.asarray),
    ("norm2", "scale"): ("conv2.0.weight", np.asarray),
    ("norm2", "bias"): ("conv2.0.bias", np.asarray),
    ("expand2", "kernel"): ("conv2.1.weight", _dense),
    ("expand2", "bias"): ("conv2.1.bias", np.asarray),
    ("project2", "kernel"): ("conv2.3.weight", _dense),
    ("project2", "bias"): ("conv2.3.bias", np.asarray),
}
_ALPHA = {("alpha1",): ("alpha1", lambda a: a.reshape(-1)), ("alpha2",): ("alpha2", lambda a: a.reshape(-1))}


def _setup(key: str):
    d = load(shared_path(GOLDEN))
    i = [str(k) for k in d["config_keys"]].index(key)
    alpha = str(d["config_block_type"][i]).endswith("AlphaVariant")
    cls = ConverseBlockAlpha if alpha else ConverseBlock
    block = cls(
        int(d["config_C"][i]),
        int(d["config_kernel_size"][i]),
        int(d["config_padding"][i]),
        str(d["config_padding_mode"][i]),
        float(d["config_eps"][i]),
    )
    mapping = {**_MAPPING, **(_ALPHA if alpha else {})}
    params: dict = {}
    grads: dict = {}
    for path, (torch_name, convert) in mapping.items():
        *parents, leaf = path
        p_node, g_node = params, grads
        for parent in parents:
            p_node, g_node = p_node.setdefault(parent, {}), g_node.setdefault(parent, {})
        p_node[leaf] = convert(d[f"{key}/params/{torch_name}"])
        g_node[leaf] = convert(d[f"{key}/grad_params/{torch_name}"])
    arrays = {n: nhwc(d[f"{key}/{n}"]) for n in ("x", "g", "out", "grad_x")}
    return block, params, grads, arrays, d


def _forward_and_grads(block, params, x, g):
    out, vjp = jax.vjp(lambda p, x: block.apply({"params": p}, x), params, x)
    grad_params, grad_x = vjp(g)
    return out, grad_x, grad_params


@pytest.mark.parametrize("key", _config_keys())
def test_block_float64(key):
    block, params, ref_grads, a, _ = _setup(key)
    with jax.enable_x64(True):
        cast = lambda t: jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), t)
        out, grad_x, grads = _forward_and_grads(block, cast(params), *cast((a["x"], a["g"])))
        assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(ref_grads)
        for got, ref in ((out, a["out"]), (grad_x, a["grad_x"])):
            assert np.abs(np.asarray(got) - ref).max() <= 1e-9 * np.abs(ref).max()
        for got, ref in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
            assert np.abs(np.asarray(got) - ref).max() <= 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("key", _config_keys())
def test_block_float32(key):
    block, params, ref_grads, a, d = _setup(key)
    cast = lambda t: jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), t)
    out, grad_x, grads = _forward_and_grads(block, cast(params), *cast((a["x"], a["g"])))
    # README section 5: PyTorch float32 reaches 3.2e-4 (out) / 9e-4 (grad_x); atol 3e-3 advised.
    assert np.abs(np.asarray(out) - a["out"]).max() <= min(3e-3, 10 * float(d[f"{key}/f32err_out"]) + 1e-4)
    assert np.abs(np.asarray(grad_x) - a["grad_x"]).max() <= 3e-3
    for got, ref in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        assert np.abs(np.asarray(got) - ref).max() <= 1e-2 * np.abs(ref).max()
