"""PyTorch state_dict <-> Flax variables for every network of the model zoo.

:func:`from_torch` turns a state_dict-shaped mapping (PyTorch names, NCHW layouts; weights from
:func:`~converse_jax.pretrained.pth.read_pth`, or any dict of that shape such as parameter
gradients) into Flax variables ``{'params': …}`` (DnCNN also ``{'batch_stats': …}``);
:func:`to_torch` is the inverse. Both are strict: every key is consumed, every variable filled and
every shape checked against the network built by :func:`converse_jax.models.get_model`
(``model_kwargs`` select a non-default variant); any mismatch raises one ``ValueError`` listing the
missing, unexpected and misshapen keys. Dtypes are kept (float32 weights stay float32, float64
gradients stay float64).

Layouts (PyTorch -> Flax):

* 1×1 conv ``(out, in, 1, 1)`` -> ``nn.Dense`` kernel ``(in, out)``; Linear ``(out, in)`` -> ``(in, out)``.
* Converse2D weight ``(1, C, k, k)`` -> ``(k, k, C)``; its bias and the alphas ``(1, C, 1, 1)`` -> ``(C,)``.
* k×k conv ``(out, in/groups, kh, kw)`` -> ``(kh, kw, in/groups, out)`` (``transpose(2, 3, 1, 0)``).
* depthwise ConvTranspose ``(C, 1, kh, kw)`` -> ``(kh, kw, 1, C)``, the same transpose, no flip
  (:class:`~converse_jax.nn.baselines.DepthwiseConvTranspose2D` flips inside).
* LayerNorm / BatchNorm ``weight`` -> ``scale``; BatchNorm ``running_mean``/``running_var`` ->
  ``batch_stats`` ``mean``/``var``; ``num_batches_tracked`` is read (and checked) but not kept.

PyTorch names: the four released models (converse_dncnn, converse_srresnet, conversenet,
converse_usrnet) use the official names, verified against the checkpoints. dncnn uses KAIR's
``DnCNN`` names (``model.<i>``), msrresnet KAIR's ``MSRResNet1`` names. The other baselines follow
the naming of their Converse counterparts (official module names, paper_notes); their PyTorch
checkpoints are not available, so those names are a convention, not a verified layout.
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

__all__ = ["check_variables", "from_torch", "infer_arch", "to_torch", "torch_names"]


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


_SHOWN = 3  # names quoted per kind in a mismatch message; the rest are counted


def _mismatch_error(who: str, missing: list[str], unexpected: list[str], misshapen: list[str]) -> ValueError:
    """One readable line: the count of each kind of mismatch and its first few names."""

    def part(kind: str, names: list[str]) -> str:
        shown = ", ".join(repr(n) for n in names[:_SHOWN])
        more = f", ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
        return f"{kind} ({len(names)}): [{shown}{more}]"

    hint = " Are these the weights of another network?" if len(missing) > _SHOWN and len(unexpected) > _SHOWN else ""
    return ValueError(
        f"{who}: keys do not match the model. {part('missing', missing)}; "
        f"{part('unexpected', unexpected)}; {part('misshapen', misshapen)}{hint}"
    )


def torch_names(arch: str, **model_kwargs: Any) -> dict[str, tuple[int, ...]]:
    """PyTorch state_dict names and shapes of the network ``arch`` (parameters and BatchNorm
    running statistics; not ``num_batches_tracked``), in natural name order.

    Args:
      arch: registry name (see :func:`converse_jax.models.list_models`).
      **model_kwargs: hyper-parameters of a non-default variant (as for ``get_model``).

    Returns:
      PyTorch name -> shape tuple in PyTorch layout (conv weights ``(out, in, kh, kw)``).

    Example:
      >>> names = torch_names("converse_dncnn", features=4, num_blocks=1)
      >>> len(names), list(names)[:2]
      (18, ['m_body.0.conv1.0.bias', 'm_body.0.conv1.0.weight'])
      >>> names["m_head.0.weight"], names["m_body.0.conv1.3.weight"]  # 1x1 conv, Converse2D
      ((4, 1, 1, 1), (1, 8, 7, 7))
    """
    _, entries = _model_and_entries(arch, model_kwargs)
    return {e.torch_name: e.torch_shape for e in entries}


def from_torch(state_dict: Mapping[str, Any], arch: str, **model_kwargs: Any) -> dict[str, Any]:
    """Map a PyTorch state_dict-shaped mapping to the Flax variables of network ``arch``.

    Args:
      state_dict: PyTorch name -> array (NumPy or anything ``np.asarray`` accepts), NCHW layouts.
        BatchNorm buffers (``running_mean``, ``running_var``, ``num_batches_tracked``) are
        optional as a group: when none is present (e.g. a gradient dict) only ``params`` is
        returned; when any is present all are required.
      arch: registry name (see :func:`converse_jax.models.list_models`).
      **model_kwargs: hyper-parameters of a non-default variant (as for ``get_model``).

    Returns:
      ``{'params': nested dict of np.ndarray}`` (plus ``'batch_stats'`` for dncnn with buffers),
      dtypes as given.

    Raises:
      ValueError: unknown ``arch``/hyper-parameter, or the keys do not match — listing the
        missing, unexpected and misshapen keys together.

    Example:
      A round trip through :func:`to_torch` with random variables of a tiny network:

      >>> import jax
      >>> from converse_jax.models import abstract_variables, get_model
      >>> shapes = abstract_variables(get_model("converse_dncnn", features=4, num_blocks=1))
      >>> rng = np.random.default_rng(0)
      >>> variables = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32), shapes)
      >>> state_dict = to_torch(variables, "converse_dncnn", features=4, num_blocks=1)
      >>> back = from_torch(state_dict, "converse_dncnn", features=4, num_blocks=1)
      >>> jax.tree.all(jax.tree.map(np.array_equal, back, variables))
      True
      >>> del state_dict["m_tail.0.bias"]
      >>> from_torch(state_dict, "converse_dncnn", features=4, num_blocks=1)
      Traceback (most recent call last):
      ...
      ValueError: from_torch(arch='converse_dncnn'): keys do not match the model. missing (1): ['m_tail.0.bias']; unexpected (0): []; misshapen (0): []
    """
    _, entries = _model_and_entries(arch, model_kwargs)
    counters = _bn_counters(entries)
    buffer_names = {e.torch_name for e in entries if e.path[0] == "batch_stats"} | set(counters)
    if not buffer_names & set(state_dict):
        entries = [e for e in entries if e.path[0] != "batch_stats"]
        counters = []
    expected = {e.torch_name: e.torch_shape for e in entries} | {c: () for c in counters}
    arrays = {str(k): np.asarray(v) for k, v in state_dict.items()}
    missing = [k for k in expected if k not in arrays]
    unexpected = sorted((k for k in arrays if k not in expected), key=_natural)
    misshapen = [
        f"{k}: got {arrays[k].shape}, expected {shape}"
        for k, shape in expected.items()
        if k in arrays and arrays[k].shape != shape
    ]
    if missing or unexpected or misshapen:
        raise _mismatch_error(f"from_torch(arch={arch!r})", missing, unexpected, misshapen)

    variables: dict[str, Any] = {}
    for e in entries:
        node = variables
        for key in e.path[:-1]:
            node = node.setdefault(key, {})
        node[e.path[-1]] = np.ascontiguousarray(_LAYOUTS[e.layout].to_flax(arrays[e.torch_name]))
    return variables


def _check_tree(variables: Mapping[str, Any], entries: Sequence[_Entry], who: str) -> dict[tuple[str, ...], np.ndarray]:
    """Flattened ``variables`` after checking them against ``entries`` (``batch_stats`` optional)."""
    if not isinstance(variables, Mapping):
        raise ValueError(f"{who}: variables must be a mapping like {{'params': ...}}, got {type(variables).__name__}")
    leaves = {path: np.asarray(v) for path, v in _flatten(variables).items()}
    if not any(path[0] == "batch_stats" for path in leaves):
        entries = [e for e in entries if e.path[0] != "batch_stats"]
    expected = {e.path: e.flax_shape for e in entries}
    missing = ["/".join(p) for p in expected if p not in leaves]
    unexpected = ["/".join(p) for p in leaves if p not in expected]
    misshapen = [
        f"{'/'.join(p)}: got {leaves[p].shape}, expected {shape}"
        for p, shape in expected.items()
        if p in leaves and leaves[p].shape != shape
    ]
    if missing or unexpected or misshapen:
        raise _mismatch_error(who, missing, unexpected, misshapen)
    return leaves


def check_variables(variables: Mapping[str, Any], arch: str, **model_kwargs: Any) -> None:
    """Raise ``ValueError`` (listing missing, unexpected and misshapen variables) unless
    ``variables`` has exactly the params (and optionally the ``batch_stats``) of ``arch``.

    Example:
      >>> import jax
      >>> from converse_jax.models import abstract_variables, get_model
      >>> shapes = abstract_variables(get_model("converse_dncnn", features=4, num_blocks=1))
      >>> rng = np.random.default_rng(0)
      >>> variables = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32), shapes)
      >>> check_variables(variables, "converse_dncnn", features=4, num_blocks=1)  # fits: None
      >>> variables["params"]["tail"]["kernel"] = np.zeros((4, 3), np.float32)  # 3 channels out
      >>> check_variables(variables, "converse_dncnn", features=4, num_blocks=1)
      Traceback (most recent call last):
      ...
      ValueError: check_variables(arch='converse_dncnn'): keys do not match the model. missing (0): []; unexpected (0): []; misshapen (1): ['params/tail/kernel: got (4, 3), expected (4, 1)']
    """
    _, entries = _model_and_entries(arch, model_kwargs)
    _check_tree(variables, entries, f"check_variables(arch={arch!r})")


def to_torch(variables: Mapping[str, Any], arch: str, **model_kwargs: Any) -> dict[str, np.ndarray]:
    """Inverse of :func:`from_torch`: Flax variables (or a gradient tree of the same shape) of
    ``arch`` -> PyTorch state_dict names and layouts.

    Args:
      variables: ``{'params': …}``, optionally with ``'batch_stats'`` (dncnn); leaves are NumPy
        or JAX arrays, converted with ``np.asarray`` (dtype kept).
      arch, **model_kwargs: as for :func:`from_torch`.

    Returns:
      PyTorch name -> C-contiguous ``np.ndarray``, in natural name order. With ``batch_stats``,
      each BatchNorm also gets ``num_batches_tracked`` = 0 (int64; Flax does not count batches).

    Raises:
      ValueError: unknown ``arch``/hyper-parameter, or the variables do not match the network —
        listing missing, unexpected and misshapen variables (``/``-joined Flax paths).

    Example:
      >>> import jax
      >>> from converse_jax.models import abstract_variables, get_model
      >>> shapes = abstract_variables(get_model("converse_dncnn", features=4, num_blocks=1))
      >>> rng = np.random.default_rng(0)
      >>> variables = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32), shapes)
      >>> state_dict = to_torch(variables, "converse_dncnn", features=4, num_blocks=1)
      >>> flax_kernel = variables["params"]["blocks_0"]["spatial"]["kernel"]  # (k, k, C)
      >>> torch_weight = state_dict["m_body.0.conv1.3.weight"]  # (1, C, k, k)
      >>> flax_kernel.shape, torch_weight.shape
      ((7, 7, 8), (1, 8, 7, 7))
      >>> bool(np.array_equal(torch_weight[0, 5], flax_kernel[:, :, 5]))
      True
      >>> variables["params"]["head"]["kernel"].shape, state_dict["m_head.0.weight"].shape
      ((1, 4), (4, 1, 1, 1))
    """
    _, entries = _model_and_entries(arch, model_kwargs)
    leaves = _check_tree(variables, entries, f"to_torch(arch={arch!r})")
    out = {
        e.torch_name: np.ascontiguousarray(_LAYOUTS[e.layout].to_torch(leaves[e.path]))
        for e in entries
        if e.path in leaves
    }
    if any(path[0] == "batch_stats" for path in leaves):
        out.update({name: np.zeros((), np.int64) for name in _bn_counters(entries)})
    return dict(sorted(out.items(), key=lambda kv: _natural(kv[0])))


def infer_arch(state_dict: Mapping[str, Any]) -> str:
    """Registry name of the network a PyTorch state_dict belongs to, from its key names
    (and the depthwise-weight shape, which tells Converse2D ``(1, C, k, k)`` from a depthwise
    conv ``(C, 1, k, k)``).

    Recognises all networks except that conv_dncnn and convt_dncnn have identical keys and
    shapes (``ValueError``: pass ``arch`` explicitly). Raises ``ValueError`` for unknown layouts.

    Example:
      >>> infer_arch({"model.0.weight": np.zeros((64, 1, 3, 3)), "model.0.bias": np.zeros(64)})
      'dncnn'
      >>> names = torch_names("converse_dncnn", features=4, num_blocks=1)
      >>> infer_arch({name: np.zeros(shape) for name, shape in names.items()})
      'converse_dncnn'
      >>> infer_arch({"fc.weight": np.zeros((2, 2))})
      Traceback (most recent call last):
      ...
      ValueError: state_dict: cannot infer the architecture from its keys (first: ['fc.weight'])
    """
    keys = set(state_dict)

    def shape(key: str) -> tuple[int, ...]:
        return tuple(np.shape(state_dict[key]))

    def converse_at(key: str) -> bool:
        return key in keys and shape(key)[0] == 1

    if "kernelnet.fc1.weight" in keys:
        return "converse_usrnet" if "d.alpha" in keys else "conv_usrnet"
    if "p.m_body.0.conv1.3.weight" in keys:
        return "conversenet" if converse_at("p.m_body.0.conv1.3.weight") else "convnet"
    if "m_head.0.weight" in keys and "m_body.0.conv1.3.weight" in keys:
        if converse_at("m_body.0.conv1.3.weight"):
            return "converse_dncnn"
        raise ValueError(
            "state_dict: conv_dncnn and convt_dncnn have the same keys and shapes; pass arch explicitly"
        )
    if "conv_body.0.conv1.3.weight" in keys:
        if converse_at("conv_body.0.conv1.3.weight"):
            return "converse_srresnet"
        if "up1.weight" in keys and len(shape("up1.weight")) == 4:
            return "conv_srresnet" if shape("up1.weight")[-1] == 2 else "convt_srresnet"
    if "recon_trunk.0.conv1.weight" in keys:
        return "converseup_msrresnet" if "up1.weight" in keys else "msrresnet"
    if "model.0.weight" in keys and len(shape("model.0.weight")) == 4:
        return "dncnn"
    sample = sorted(keys, key=_natural)[:5]
    raise ValueError(f"state_dict: cannot infer the architecture from its keys (first: {sample})")
