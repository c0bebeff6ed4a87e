"""One entry point to get a ready network: ``load(path) -> (model, variables)``.

``path`` is either an official PyTorch checkpoint (``.pth``, read without torch by
:func:`~converse_jax.pretrained.pth.read_pth`, architecture inferred from the key names) or a
variable store written by :func:`~converse_jax.pretrained.store.save_variables`.

Variable-store convention: the hyper-parameters of a non-default variant are kept in the store's
metadata under ``"model_kwargs"`` (e.g. ``save_variables(dir, variables, arch="converse_dncnn",
metadata={"model_kwargs": {"features": 16, "num_blocks": 4}})``), so that ``load(dir)`` rebuilds
the same network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flax.linen as nn

from converse_jax.models.registry import get_model
from converse_jax.pretrained.convert import check_variables, from_torch, infer_arch
from converse_jax.pretrained.pth import read_pth
from converse_jax.pretrained.store import load_metadata, load_variables

__all__ = ["MODEL_KWARGS_KEY", "load"]

MODEL_KWARGS_KEY = "model_kwargs"


def load(
    path: str | os.PathLike[str], arch: str | None = None, **model_kwargs: Any
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a network and its variables from a ``.pth`` file or a variable-store directory.

    Args:
      path: a PyTorch checkpoint file (zip ``.pth``) or a directory saved by ``save_variables``.
      arch: registry name. For a ``.pth`` it overrides :func:`infer_arch` (needed for
        conv_dncnn / convt_dncnn); for a store it must equal the stored name when given.
      **model_kwargs: hyper-parameters of a non-default variant; for a store they update the
        ``"model_kwargs"`` saved in its metadata.

    Returns:
      ``(model, variables)``: the Flax module (``get_model(arch, **model_kwargs)``) and its
      variables as nested dicts of NumPy arrays (``{'params': …}``, dncnn also ``batch_stats``),
      ready for ``model.apply(variables, x, ...)``.

    Raises:
      FileNotFoundError: ``path`` does not exist. ValueError: unknown or mismatching ``arch``,
      or variables that do not fit the network (see :func:`from_torch`).

    Example:
      A variable store of a tiny variant, whose hyper-parameters travel in its metadata:

      >>> import jax, tempfile
      >>> import numpy as np
      >>> from converse_jax.models import abstract_variables
      >>> from converse_jax.pretrained import save_variables
      >>> kwargs = {"features": 4, "num_blocks": 1}
      >>> shapes = abstract_variables(get_model("converse_dncnn", **kwargs))
      >>> variables = jax.tree.map(lambda s: np.full(s.shape, 0.5, s.dtype), shapes)
      >>> tmp = tempfile.TemporaryDirectory()
      >>> store = save_variables(Path(tmp.name) / "tiny", variables, arch="converse_dncnn",
      ...                        metadata={MODEL_KWARGS_KEY: kwargs})
      >>> model, loaded = load(store)  # ready for model.apply(loaded, x), x (N, H, W, 1)
      >>> type(model).__name__, model.features, model.num_blocks
      ('ConverseDnCNN', 4, 1)
      >>> jax.tree.all(jax.tree.map(np.array_equal, loaded, variables))
      True
      >>> load(store, arch="dncnn")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: arch: ...tiny holds 'converse_dncnn', but arch='dncnn' was requested
      >>> tmp.cleanup()
    """
    path = Path(path).expanduser()
    if path.is_dir():
        stored_arch, variables = load_variables(path)
        if arch is not None and arch != stored_arch:
            raise ValueError(f"arch: {path} holds {stored_arch!r}, but arch={arch!r} was requested")
        saved = load_metadata(path).get(MODEL_KWARGS_KEY, {})
        if not isinstance(saved, dict):
            raise ValueError(f"path: metadata[{MODEL_KWARGS_KEY!r}] of {path} must be a dict, got {saved!r}")
        kwargs = {**saved, **model_kwargs}
        check_variables(variables, stored_arch, **kwargs)
        return get_model(stored_arch, **kwargs), variables
    if path.is_file():
        state_dict = read_pth(path)
        arch = arch if arch is not None else infer_arch(state_dict)
        variables = from_torch(state_dict, arch, **model_kwargs)
        return get_model(arch, **model_kwargs), variables
    raise FileNotFoundError(f"path: {path} does not exist")
