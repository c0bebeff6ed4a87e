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

PyTorch names come from each network's record (:attr:`converse_jax.models.ModelSpec.torch_names`):
the four released models (converse_dncnn, converse_srresnet, conversenet, converse_usrnet) use the
official names, verified against the checkpoints. dncnn uses KAIR's ``DnCNN`` names
(``model.<i>``), msrresnet KAIR's ``MSRResNet1`` names. The other baselines follow the naming of
their Converse counterparts (official module names, paper_notes); their PyTorch checkpoints are
not available, so those names are a convention, not a verified layout. :func:`check_variables`
needs no PyTorch names: it checks any registered network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from converse_jax.models.registry import MODELS, abstract_variables, get_model
from converse_jax.pretrained.names import _LAYOUTS, _bn_counters, _flatten, _model_and_entries, _natural

__all__ = ["check_variables", "from_torch", "infer_arch", "to_torch", "torch_names"]


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


def _check_tree(
    variables: Mapping[str, Any], expected: Mapping[tuple[str, ...], tuple[int, ...]], who: str
) -> dict[tuple[str, ...], np.ndarray]:
    """Flattened ``variables`` after checking them against the ``expected`` shapes by path (``batch_stats`` optional)."""
    if not isinstance(variables, Mapping):
        raise ValueError(f"{who}: variables must be a mapping like {{'params': ...}}, got {type(variables).__name__}")
    leaves = {path: np.asarray(v) for path, v in _flatten(variables).items()}
    if not any(path[0] == "batch_stats" for path in leaves):
        expected = {path: shape for path, shape in expected.items() if path[0] != "batch_stats"}
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
    shapes = _flatten(abstract_variables(get_model(arch, **model_kwargs)))
    _check_tree(variables, {path: tuple(s.shape) for path, s in shapes.items()}, f"check_variables(arch={arch!r})")


def to_torch(variables: Mapping[str, Any], arch: str, **model_kwargs: Any) -> dict[str, np.ndarray]:
    """Inverse of :func:`from_torch`: Flax variables (or a gradient tree of the same shape) of
    ``arch`` -> PyTorch state_dict names and layouts.

    Args:
      variables: ``{'params': …}``, optionally with ``'batch_stats'`` (dncnn); leaves are NumPy
        or JAX arrays, converted with ``np.asarray`` (dtype kept).
      arch, ``**model_kwargs``: as for :func:`from_torch`.

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
    leaves = _check_tree(variables, {e.path: e.flax_shape for e in entries}, f"to_torch(arch={arch!r})")
    out = {
        e.torch_name: np.ascontiguousarray(_LAYOUTS[e.layout].to_torch(leaves[e.path]))
        for e in entries
        if e.path in leaves
    }
    if any(path[0] == "batch_stats" for path in leaves):
        out.update({name: np.zeros((), np.int64) for name in _bn_counters(entries)})
    return dict(sorted(out.items(), key=lambda kv: _natural(kv[0])))


def infer_arch(state_dict: Mapping[str, Any]) -> str:
    """Registry name of the network a PyTorch state_dict belongs to, from its key names and shapes.

    Each record's :attr:`~converse_jax.models.ModelSpec.torch_names` ``signature`` is asked (the
    key names, and e.g. the depthwise-weight shape, which tells Converse2D ``(1, C, k, k)`` from
    a depthwise conv ``(C, 1, k, k)``); exactly one must match. conv_dncnn and convt_dncnn have
    identical keys and shapes (``ValueError``: pass ``arch`` explicitly). Raises ``ValueError``
    for unknown layouts.

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
    shapes = {str(key): tuple(np.shape(value)) for key, value in state_dict.items()}
    found = [name for name, spec in MODELS.items() if spec.torch_names is not None and spec.torch_names.signature(shapes)]
    if len(found) > 1:
        raise ValueError(f"state_dict: {' and '.join(found)} have the same keys and shapes; pass arch explicitly")
    if not found:
        sample = sorted(shapes, key=_natural)[:5]
        raise ValueError(f"state_dict: cannot infer the architecture from its keys (first: {sample})")
    return found[0]
