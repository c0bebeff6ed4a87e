"""The vocabulary a network's record uses to name its variables the PyTorch way.

A record's :class:`TorchNames` says how the network's PyTorch twin names its tensors (a list of
:class:`TorchRule`, built from the Flax module so that depth-dependent names work) and how to
recognise a state_dict of that network (``signature``: a predicate on the ``{name: shape}`` of a
state_dict, used by :func:`converse_jax.pretrained.infer_arch`). The rules map Flax module paths
(regular expressions, full match) to PyTorch module names; a rule's ``kind`` names the leaves
(:data:`LEAVES`: Flax leaf -> PyTorch leaf and layout); :mod:`converse_jax.pretrained.names`
applies them and owns the layouts (the transposes between PyTorch and Flax shapes).

Example:
  The rules of a Converse block at ``blocks_3`` named ``m_body.3`` in PyTorch:

  >>> rules = block_rules(r"blocks_(\\d+)", "m_body.{0}", "converse")
  >>> import re
  >>> rule = rules[3]  # the spatial operator
  >>> rule.flax, rule.kind, rule.torch_prefix(re.fullmatch(rule.flax, "blocks_3/spatial"))
  ('blocks_(\\\\d+)/spatial', 'converse', 'm_body.3.conv1.3')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import flax.linen as nn

__all__ = ["LEAVES", "TorchNames", "TorchRule", "block_rules", "converse_at", "stage"]

LEAVES: dict[str, dict[str, tuple[str, str]]] = {
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
"""Module kind -> {Flax leaf name: (PyTorch leaf name, layout name)} (layouts:
:mod:`converse_jax.pretrained.names`)."""


@dataclass(frozen=True)
class TorchRule:
    """Flax module path (regex, full match) -> PyTorch module prefix and module kind.

    ``torch`` is a format template over the regex groups (``'m_body.{0}'``) or a function of the
    match; ``kind`` is a key of :data:`LEAVES`.

    Example:
      >>> rule = TorchRule(r"body_(\\d+)/conv", lambda m: f"model.{2 + 3 * int(m[1])}", "conv")
      >>> rule.torch_prefix(re.fullmatch(rule.flax, "body_1/conv"))
      'model.5'
    """

    flax: str
    torch: str | Callable[[re.Match[str]], str]
    kind: str

    def __post_init__(self):
        if self.kind not in LEAVES:
            raise ValueError(f"kind: expected one of {sorted(LEAVES)}, got {self.kind!r}")

    def torch_prefix(self, match: re.Match[str]) -> str:
        """The PyTorch module name of the Flax module ``match`` matched."""
        return self.torch(match) if callable(self.torch) else self.torch.format(*match.groups())


@dataclass(frozen=True)
class TorchNames:
    """How a network's PyTorch twin names its tensors, and how to recognise its state_dict.

    Attributes:
      rules: ``rules(module) -> [TorchRule, ...]`` for the built Flax module (the first rule
        that matches a variable's module path names it).
      signature: ``signature({name: shape}) -> bool``: whether a state_dict holds this network
        (checked against the records of all networks; exactly one should match).

    Example:
      >>> names = TorchNames(lambda m: [TorchRule("head", "conv_first", "conv")], lambda s: "conv_first.weight" in s)
      >>> names.signature({"conv_first.weight": (64, 3, 3, 3)}), names.rules(None)[0].torch
      (True, 'conv_first')
    """

    rules: Callable[[nn.Module], list[TorchRule]]
    signature: Callable[[Mapping[str, tuple[int, ...]]], bool]


def block_rules(flax: str, torch: str | Callable[[re.Match[str]], str], spatial: str) -> list[TorchRule]:
    """Rules of a Converse/Conv/ConvT block: LN, 1×1, spatial, 1×1 | LN, 1×1, 1×1 (+ alphas).

    The official block names its parts ``conv1.{0,1,3,5}`` and ``conv2.{0,1,3}``; ``spatial`` is
    the kind of its spatial operator (``'converse'`` or ``'conv'``).

    >>> [r.flax for r in block_rules("hres", "conv_hres", "conv")][:3]
    ['hres', 'hres/norm1', 'hres/expand1']
    """
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
    return [TorchRule(flax, base, "alpha")] + [
        TorchRule(f"{flax}/{f}", lambda m, t=t: f"{base(m)}.{t}", k) for f, t, k in parts
    ]


def stage(fmt: str) -> Callable[[re.Match[str]], str]:
    """PyTorch's 1-based stage names (``upconv1``, ``up2``) from a 0-based Flax index.

    >>> stage("up{}")(re.fullmatch(r"ups_(\\d+)", "ups_0"))
    'up1'
    """
    return lambda m: fmt.format(int(m[1]) + 1)


def converse_at(shapes: Mapping[str, tuple[int, ...]], key: str) -> bool:
    """Whether ``key`` is a Converse2D weight ``(1, C, k, k)`` (a depthwise conv's is ``(C, 1, k, k)``).

    >>> converse_at({"w": (1, 64, 7, 7)}, "w"), converse_at({"w": (64, 1, 5, 5)}, "w"), converse_at({}, "w")
    (True, False, False)
    """
    return tuple(shapes.get(key, ()))[:1] == (1,)
