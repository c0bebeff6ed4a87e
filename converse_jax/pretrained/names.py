"""The PyTorch name and layout of every Flax variable of every model-zoo network.

One rule list per architecture maps Flax module paths (regular expressions) to PyTorch module
names; a rule's kind (conv, converse, norm, ...) gives the leaves' names and their layouts
(:class:`_Layout`: PyTorch shape <-> Flax shape and the transposes between them).
:func:`_model_and_entries` builds the network with :func:`converse_jax.models.get_model` and
lists one :class:`_Entry` per variable in PyTorch-name order (cached per architecture and
hyper-parameters). :mod:`converse_jax.pretrained.convert` converts with these entries; the
layouts and naming conventions are described there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import numpy as np

from converse_jax.models.registry import abstract_variables, get_model

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

# Module kind -> {Flax leaf name: (PyTorch leaf name, layout)}.
_LEAVES: dict[str, dict[str, tuple[str, str]]] = {
    "conv1x1": {"kernel": ("weight", "conv1x1"), "bias": ("bias", "same")},
    "linear": {"kernel": ("weight", "linear"), "bias": ("bias", "same")},
    "norm": {"scale": ("weight", "same"), "bias": ("bias", "same")},
    "converse": {"kernel": ("weight", "converse"), "bias": ("bias", "vec4")},
    "conv": {"kernel": ("weight", "conv"), "bias": ("bias", "same")},
    "bn": {
        "scale": ("weight", "same"),
        "bias": ("bias", "same"),
        "mean": ("running_mean", "same"),
        "var": ("running_var", "same"),
    },
    "alpha": {"alpha1": ("alpha1", "vec4"), "alpha2": ("alpha2", "vec4"), "alpha": ("alpha", "vec4")},
}

_BN_COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class _Rule:
    """Flax module path (regex, full match) -> PyTorch module prefix (format template over the
    regex groups, or a function of the match) and module kind."""

    flax: str
    torch: str | Callable[[re.Match[str]], str]
    kind: str


def _block(flax: str, torch: str | Callable[[re.Match[str]], str], spatial: str) -> list[_Rule]:
    """Rules of a Converse/Conv/ConvT block: LN, 1×1, spatial, 1×1 | LN, 1×1, 1×1 (+ alphas)."""
    base = torch if callable(torch) else (lambda m: torch.format(*m.groups()))
    parts = [
        ("norm1", "conv1.0", "norm"),
        ("expand1", "conv1.1", "conv1x1"),
        ("spatial", "conv1.3", spatial),
        ("project1", "conv1.5", "conv1x1"),
        ("norm2", "conv2.0", "norm"),
        ("expand2", "conv2.1", "conv1x1"),
        ("project2", "conv2.3", "conv1x1"),
    ]
    return [_Rule(flax, base, "alpha")] + [
        _Rule(f"{flax}/{f}", lambda m, t=t: f"{base(m)}.{t}", k) for f, t, k in parts
    ]


def _stage(fmt: str) -> Callable[[re.Match[str]], str]:
    """PyTorch's 1-based stage names (``upconv1``, ``up2``) from a 0-based Flax index."""
    return lambda m: fmt.format(int(m[1]) + 1)


def _dncnn_family(spatial: str) -> Callable[[nn.Module], list[_Rule]]:
    return lambda model: [
        _Rule("head", "m_head.0", "conv1x1"),
        *_block(r"blocks_(\d+)", "m_body.{0}", spatial),
        _Rule("tail", "m_tail.0", "conv1x1"),
    ]


def _dncnn(model: nn.Module) -> list[_Rule]:
    tail = 2 + 3 * (model.num_layers - 2)
    return [
        _Rule("head", "model.0", "conv"),
        _Rule(r"body_(\d+)/conv", lambda m: f"model.{2 + 3 * int(m[1])}", "conv"),
        _Rule(r"body_(\d+)/bn", lambda m: f"model.{3 + 3 * int(m[1])}", "bn"),
        _Rule("tail", f"model.{tail}", "conv"),
    ]


def _sr_family(spatial: str, up: str) -> Callable[[nn.Module], list[_Rule]]:
    return lambda model: [
        _Rule("head", "conv_first", "conv1x1"),
        *_block(r"blocks_(\d+)", "conv_body.{0}", spatial),
        *_block(r"upconvs_(\d+)", _stage("upconv{}"), spatial),
        _Rule(r"ups_(\d+)", _stage("up{}"), up),
        *_block("hres", "conv_hres", spatial),
        _Rule("tail", "conv_last", "conv1x1"),
    ]


def _msrresnet_family(model: nn.Module) -> list[_Rule]:
    return [
        _Rule("head", "conv_first", "conv"),
        _Rule(r"blocks_(\d+)/(conv[12])", "recon_trunk.{0}.{1}", "conv"),
        _Rule(r"upconvs_(\d+)", _stage("upconv{}"), "conv"),
        _Rule(r"ups_(\d+)", _stage("up{}"), "converse"),
        _Rule("hres", "HRconv", "conv"),
        _Rule("tail", "conv_last", "conv"),
    ]


def _deblur_family(spatial: str) -> Callable[[nn.Module], list[_Rule]]:
    return lambda model: [
        _Rule("head", "conv1", "conv1x1"),
        *_block(r"blocks_(\d+)", "p.m_body.{0}", spatial),
        _Rule("tail", "conv2", "conv1x1"),
    ]


def _usrnet_family(spatial: str) -> Callable[[nn.Module], list[_Rule]]:
    return lambda model: [
        *_deblur_family(spatial)(model),
        _Rule(r"kernel_net/(fc\d)", "kernelnet.{0}", "linear"),
        _Rule(r"kernel_proj_(\d+)", "convs.{0}", "conv1x1"),
        _Rule("data", "d", "alpha"),
    ]


_RULES: dict[str, Callable[[nn.Module], list[_Rule]]] = {
    "converse_dncnn": _dncnn_family("converse"),
    "conv_dncnn": _dncnn_family("conv"),
    "convt_dncnn": _dncnn_family("conv"),
    "dncnn": _dncnn,
    "converse_srresnet": _sr_family("converse", "converse"),
    "conv_srresnet": _sr_family("conv", "conv"),
    "convt_srresnet": _sr_family("conv", "conv"),
    "msrresnet": _msrresnet_family,
    "converseup_msrresnet": _msrresnet_family,
    "conversenet": _deblur_family("converse"),
    "convnet": _deblur_family("conv"),
    "converse_usrnet": _usrnet_family("converse"),
    "conv_usrnet": _usrnet_family("conv"),
}


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
    rules = _RULES[arch](model)
    entries = []
    for path, leaf in _flatten(abstract_variables(model)).items():
        module, name = "/".join(path[1:-1]), path[-1]
        for rule in rules:
            match = re.fullmatch(rule.flax, module)
            if match and name in _LEAVES[rule.kind]:
                prefix = rule.torch(match) if callable(rule.torch) else rule.torch.format(*match.groups())
                torch_leaf, layout = _LEAVES[rule.kind][name]
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
