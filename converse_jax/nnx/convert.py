"""Linen -> NNX: :func:`from_linen` (a linen module and its variables) and :func:`load_nnx`
(official or stored weights straight into NNX).

The four layers of :mod:`converse_jax.nnx.layers` convert to their native NNX twins. The
networks of the zoo go through ``flax.nnx.bridge.ToNNX``: the NNX module wraps the very linen
network, so every architecture has one definition, its parameter tree stays the one the official
weight conversion (:mod:`converse_jax.pretrained.convert`) targets, and DnCNN's BatchNorm
statistics, ``remat`` and the weight-shared iterations of ConverseNet/USRNet keep working
unchanged. Re-writing thirteen networks natively would duplicate each of them for no
difference in results; the bridged module is a regular NNX module (``nnx.jit``, ``nnx.grad``,
``nnx.Optimizer``, ``nnx.split``/``nnx.merge`` all apply), and NNX users who build their own
networks use the native layers.
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from converse_jax import nn as cnn
from converse_jax.models.registry import example_inputs
from converse_jax.nnx import layers

__all__ = ["from_linen", "load_nnx"]

_NATIVE = {
    cnn.LayerNorm: layers.LayerNorm,
    cnn.Converse2D: layers.Converse2D,
    cnn.ConverseBlock: layers.ConverseBlock,
    cnn.ConverseBlockAlpha: layers.ConverseBlockAlpha,
}


def _assign(target: Any, params: dict[str, Any], where: str) -> None:
    """Copies the nested dict ``params`` into the same-named ``nnx.Variable`` s of ``target``."""
    for name, value in params.items():
        if not hasattr(target, name):
            raise ValueError(f"variables: {where}{name} has no counterpart in the NNX module")
        held = getattr(target, name)
        if isinstance(value, dict):
            _assign(held, value, f"{where}{name}/")
            continue
        if tuple(held.shape) != tuple(jnp.shape(value)):
            raise ValueError(f"variables: {where}{name} has shape {jnp.shape(value)}, expected {held.shape}")
        held[...] = jnp.asarray(value, held.dtype)


def _native(model: nn.Module, variables: dict[str, Any]) -> nnx.Module:
    params = variables["params"]
    fields = {f: getattr(model, f) for f in ("eps", "dtype", "param_dtype")}
    if isinstance(model, cnn.LayerNorm):
        module = layers.LayerNorm(len(params["scale"]), **fields)
    elif isinstance(model, cnn.Converse2D):
        args = (model.features, model.kernel_size, model.scale, model.padding, model.padding_mode)
        module = layers.Converse2D(*args, **fields, rngs=nnx.Rngs(0))
    else:
        args = (model.features, model.kernel_size, model.padding, model.padding_mode)
        module = _NATIVE[type(model)](*args, **fields, rngs=nnx.Rngs(0))
    _assign(module, params, "")
    return module


def _bridged(model: nn.Module, variables: dict[str, Any]) -> nnx.Module:
    inputs = example_inputs(model, size=8)
    abstract = nnx.eval_shape(lambda: nnx.bridge.lazy_init(nnx.bridge.ToNNX(model, rngs=nnx.Rngs(0)), *inputs))
    graphdef, rng_state, state = nnx.split(abstract, nnx.RngState, ...)
    flat = dict(nnx.to_flat_state(state))
    # ToNNX keeps every collection's variables as attributes: no collection name in the paths
    given = {path[1:]: value for path, value in _flatten(variables)}
    if set(flat) != set(given):
        missing, extra = sorted(set(flat) - set(given)), sorted(set(given) - set(flat))
        raise ValueError(f"variables: do not fit {type(model).__name__}: missing {missing[:3]}, unexpected {extra[:3]}")
    for path, var in flat.items():
        if tuple(var.shape) != tuple(jnp.shape(given[path])):
            raise ValueError(f"variables: {'/'.join(path)} has shape {jnp.shape(given[path])}, expected {var.shape}")
        var.set_value(jnp.asarray(given[path], var.dtype))
    module = nnx.merge(graphdef, rng_state, nnx.from_flat_state(flat))
    module.to_nnx__rngs = nnx.Rngs(0)  # concrete keys for the (unused) linen rng streams
    return module


def _flatten(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name, value in tree.items():
        if isinstance(value, dict):
            out += _flatten(value, (*prefix, name))
        else:
            out.append(((*prefix, name), value))
    return out


def from_linen(model: nn.Module, variables: dict[str, Any]) -> nnx.Module:
    """An NNX module computing what ``model.apply(variables, ...)`` computes, holding ``variables``.

    Args:
      model: a linen :class:`~converse_jax.nn.LayerNorm`, :class:`~converse_jax.nn.Converse2D`,
        :class:`~converse_jax.nn.ConverseBlock` or :class:`~converse_jax.nn.ConverseBlockAlpha`
        (converted to the native layer of :mod:`converse_jax.nnx`), or a network of the zoo
        (wrapped by ``flax.nnx.bridge.ToNNX``; call it as the linen network, e.g.
        ``net(x)``, ``usrnet(x, kernel)``, ``dncnn(x, train=False)``).
      variables: its variables (``{'params': …}``, DnCNN also ``batch_stats``), arrays of any
        kind (NumPy from :func:`converse_jax.pretrained.load`, jax); copied into the module.

    Raises:
      ValueError: variables that do not fit the module (names or shapes).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from converse_jax.models import get_model
      >>> model = get_model("converse_dncnn", features=4, num_blocks=1)
      >>> x = jnp.ones((1, 8, 8, 1))
      >>> variables = model.init(jax.random.key(0), x)
      >>> net = from_linen(model, variables)
      >>> bool(jnp.array_equal(net(x), model.apply(variables, x)))
      True
    """
    if type(model) in _NATIVE:
        return _native(model, dict(variables))
    return _bridged(model, dict(variables))


def load_nnx(path: str | os.PathLike[str], arch: str | None = None, **model_kwargs: Any) -> nnx.Module:
    """:func:`converse_jax.pretrained.load` returning an NNX module that holds the weights.

    Same arguments as ``load`` (a ``.pth`` file or a variable store, ``arch``, hyper-parameters
    such as ``dtype=jnp.bfloat16``); the network is bridged as in :func:`from_linen`.

    Example:
      >>> import tempfile, jax, numpy as np
      >>> from pathlib import Path
      >>> from converse_jax.models import abstract_variables, get_model
      >>> from converse_jax.pretrained import save_variables
      >>> kwargs = {"features": 4, "num_blocks": 1}
      >>> shapes = abstract_variables(get_model("converse_dncnn", **kwargs))
      >>> variables = jax.tree.map(lambda s: np.full(s.shape, 0.5, s.dtype), shapes)
      >>> tmp = tempfile.TemporaryDirectory()
      >>> store = save_variables(Path(tmp.name) / "tiny", variables, arch="converse_dncnn",
      ...                        metadata={"model_kwargs": kwargs})
      >>> net = load_nnx(store)
      >>> net(np.ones((1, 8, 8, 1), np.float32)).shape
      (1, 8, 8, 1)
      >>> tmp.cleanup()
    """
    from converse_jax.pretrained import load  # deferred: orbax is slow to import

    model, variables = load(path, arch, **model_kwargs)
    return from_linen(model, jax.tree.map(jnp.asarray, variables))
