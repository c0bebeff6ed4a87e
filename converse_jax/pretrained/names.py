"""The PyTorch name and layout of every Flax variable of a registered network (internal).

A network's record says how its PyTorch twin names its tensors
(:attr:`converse_jax.models.ModelSpec.torch_names`: rules mapping Flax module paths to PyTorch
module names, each of a kind whose leaves :data:`converse_jax.models.torch_names.LEAVES` names);
this module owns the layouts (:class:`_Layout`: PyTorch shape <-> Flax shape and the transposes
between them). :func:`_model_and_entries` builds the network with
:func:`converse_jax.models.get_model` and lists one :class:`_Entry` per variable in PyTorch-name
order (cached per architecture and hyper-parameters). :mod:`converse_jax.pretrained.convert`
converts with these entries; the layouts and naming conventions are described there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import numpy as np

from converse_jax.models.registry import abstract_variables, get_model, get_spec
from converse_jax.models.torch_names import LEAVES

__all__: list[str] = []


@dataclass(frozen=True)
class _Layout:
    """How one tensor is stored on each side: shape map and array maps."""

    torch_shape: Callable[[tuple[int, ...]], tuple[int, ...]]
    to_flax: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


_LAYOUTS: dict[str, _Layout] = {
    "same": _Layout(lambda s: s, lambda a: a, lambda a: a),
    "vec4": _Layout(lambda s: (1, s[0], 1, 1), lambda a: a.reshape(-1), lambda a: a.reshape(1, -1, 1, 1)),
    "conv1x1": _Layout(lambda s: (s[1], s[0], 1, 1), lambda a: a[:, :, 0, 0].T, lambda a: a.T[:, :, None, None]),
    "linear": _Layout(lambda s: (s[1], s[0]), lambda a: a.T, lambda a: a.T),
    "converse": _Layout(
        lambda s: (1, s[2], s[0], s[1]), lambda a: a[0].transpose(1, 2, 0), lambda a: a.transpose(2, 0, 1)[None]
    ),
    "conv": _Layout(
        lambda s: (s[3], s[2], s[0], s[1]), lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1)
    ),
}

_BN_COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class _Entry:
    """One tensor: its Flax location and shape, PyTorch name and layout."""

    path: tuple[str, ...]  # (collection, module..., leaf)
    flax_shape: tuple[int, ...]
    torch_name: str
    layout: str

    @property
    def torch_shape(self) -> tuple[int, ...]:
        return tuple(_LAYOUTS[self.layout].torch_shape(self.flax_shape))


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _model_and_entries(arch: str, model_kwargs: dict[str, Any]) -> tuple[nn.Module, Sequence[_Entry]]:
    """The network and the PyTorch mapping of each of its variables (in PyTorch-name order).

    Tracing a network for its variable shapes takes a second or more, so results are cached
    per (arch, hyper-parameters) when the hyper-parameter values are hashable."""
    try:
        key = (arch, tuple(sorted(model_kwargs.items())))
        hash(key)
    except TypeError:
        return _build_entries(arch, tuple(model_kwargs.items()))
    return _cached_entries(*key)


def _build_entries(arch: str, kwargs: tuple[tuple[str, Any], ...]) -> tuple[nn.Module, Sequence[_Entry]]:
    model = get_model(arch, **dict(kwargs))  # validates arch and model_kwargs
    torch_names = get_spec(arch).torch_names
    if torch_names is None:
        raise ValueError(f"arch: {arch} has no PyTorch names in its record (torch_names); it cannot be converted")
    rules = torch_names.rules(model)
    entries = []
    for path, leaf in _flatten(abstract_variables(model)).items():
        module, name = "/".join(path[1:-1]), path[-1]
        for rule in rules:
            match = re.fullmatch(rule.flax, module)
            if match and name in LEAVES[rule.kind]:
                prefix = rule.torch_prefix(match)
                torch_leaf, layout = LEAVES[rule.kind][name]
                entries.append(_Entry(path, tuple(leaf.shape), f"{prefix}.{torch_leaf}", layout))
                break
        else:  # a model/rule inconsistency, not a user error
            raise AssertionError(f"{arch}: no PyTorch name for Flax variable {'/'.join(path)}")
    return model, sorted(entries, key=lambda e: _natural(e.torch_name))


@functools.lru_cache(maxsize=64)
def _cached_entries(arch: str, kwargs: tuple[tuple[str, Any], ...]) -> tuple[nn.Module, Sequence[_Entry]]:
    model, entries = _build_entries(arch, kwargs)
    return model, tuple(entries)


def _bn_counters(entries: Sequence[_Entry]) -> list[str]:
    return sorted({e.torch_name.rsplit(".", 1)[0] + f".{_BN_COUNTER}" for e in entries if e.path[0] == "batch_stats"})
