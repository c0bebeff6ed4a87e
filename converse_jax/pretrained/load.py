"""One entry point to get a ready network: ``load(weights) -> (model, variables)``.

``weights`` is any of

* the name of a network with released weights (``list_models(pretrained=True)``:
  ``"converse_dncnn"``, ``"converse_srresnet"``, ``"conversenet"``, ``"converse_usrnet"``):
  downloaded once, verified and cached by :func:`~converse_jax.pretrained.hub.fetch` (an existing
  file or folder of that name in the current directory takes precedence);
* an official PyTorch checkpoint (``.pth``, read without torch by
  :func:`~converse_jax.pretrained.pth.read_pth`, architecture inferred from the key names);
* a variable store written by :func:`~converse_jax.pretrained.store.save_variables`
  (``converse-jax convert``);
* a training workdir (``WORKDIR/config.json`` + ``WORKDIR/checkpoints``, written by ``train.py``):
  the EMA weights of its best checkpoint by validation PSNR, or of ``step``
  (:func:`~converse_jax.pretrained.runs.read_run`); a network registered outside the package is
  found again through the module the run recorded (it must be importable).

Variable-store convention: the hyper-parameters of a non-default variant are kept in the store's
metadata under ``"model_kwargs"`` (e.g. ``save_variables(dir, variables, arch="converse_dncnn",
metadata={"model_kwargs": {"features": 16, "num_blocks": 4}})``), so that ``load(dir)`` rebuilds
the same network; a training run's are its config's ``model_overrides``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flax.linen as nn

from converse_jax.models.registry import get_model, list_models
from converse_jax.pretrained.convert import check_variables, from_torch, infer_arch
from converse_jax.pretrained.hub import fetch
from converse_jax.pretrained.pth import check_finite, read_pth
from converse_jax.pretrained.runs import is_run, read_run, run_arch
from converse_jax.pretrained.store import load_metadata, load_variables, stored_arch
from converse_jax.utils.paths import as_path

__all__ = ["MODEL_KWARGS_KEY", "load", "weights_arch"]

MODEL_KWARGS_KEY = "model_kwargs"


def pth_file(source: str | os.PathLike[str], what: str = "weights", *, progress: bool = True) -> Path:
    """The checkpoint file ``source`` names: an existing path, or an official name's cached download.

    Args:
      source: a file path, or an official checkpoint name (``list_models(pretrained=True)``),
        fetched once into the cache by :func:`~converse_jax.pretrained.hub.fetch`.
      what: the argument's name, for the error message.
      progress: progress bar while downloading.

    Raises:
      FileNotFoundError: ``source`` neither exists nor is an official name.

    Example:
      >>> pth_file("no_such_file.pth", "IN")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      FileNotFoundError: IN: no_such_file.pth does not exist (and is not an official checkpoint name: ...)
    """
    path = _local(source, what)
    return fetch(str(source), progress=progress) if path is None else path


def _local(weights: str | os.PathLike[str], what: str = "weights") -> Path | None:
    """``weights`` as an existing path, or None when it is an official name not present locally
    (``what`` names the argument in the error)."""
    path = as_path(weights, what)
    if path.exists():
        return path
    released = list_models(pretrained=True)
    if str(weights) in released:
        return None
    raise FileNotFoundError(f"{what}: {path} does not exist (and is not an official checkpoint name: {', '.join(released)})")


def weights_arch(weights: str | os.PathLike[str]) -> str:
    """The registry name of the network that ``weights`` (any form :func:`load` takes) hold.

    Reads only what tells the architecture: the name itself, a run's ``config.json``, a store's
    manifest, or a ``.pth``'s key names (the whole file is read then).

    Example:
      >>> weights_arch("conversenet")  # an official name: nothing is read or downloaded
      'conversenet'
      >>> weights_arch("no_such_file.pth")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      FileNotFoundError: weights: no_such_file.pth does not exist (and is not an official checkpoint name: ...)
    """
    path = _local(weights)
    if path is None:
        return str(weights)
    if path.is_dir():
        return run_arch(path) if is_run(path) else stored_arch(path)
    return infer_arch(read_pth(path))


def load(
    weights: str | os.PathLike[str],
    arch: str | None = None,
    *,
    step: int | None = None,
    progress: bool = True,
    loaded: dict[str, Any] | None = None,
    **model_kwargs: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a network and its variables from a name, a ``.pth``, a variable store or a training run.

    Args:
      weights: an official checkpoint name (downloaded and cached, see
        :mod:`converse_jax.pretrained.hub`), a PyTorch checkpoint file (zip ``.pth``), a
        directory saved by ``save_variables`` / ``converse-jax convert``, or a training workdir.
      arch: registry name. For a ``.pth`` it overrides :func:`infer_arch` (needed for
        conv_dncnn / convt_dncnn); for a name, a store or a run it must equal the network they
        hold when given (the message names both).
      step: for a training workdir, the checkpoint to read (default: the best by validation
        PSNR); refused for the other forms.
      progress: progress bar while downloading an official checkpoint.
      loaded: a dict that, for a training workdir, receives ``{'step': N}``, the checkpoint
        actually loaded (a damaged one is passed over for the newest intact one, see
        :func:`~converse_jax.pretrained.runs.read_run`).
      **model_kwargs: hyper-parameters of a non-default variant; for a store or a run they
        update the saved ones (store metadata ``"model_kwargs"``, run ``model_overrides``).

    Returns:
      ``(model, variables)``: the Flax module (``get_model(arch, **model_kwargs)``) and its
      variables as nested dicts of NumPy arrays (``{'params': …}``, dncnn also ``batch_stats``),
      ready for ``model.apply(variables, x, ...)``.

    Raises:
      FileNotFoundError: ``weights`` neither exists nor is an official name. ValueError: unknown
      or mismatching ``arch``, a bad ``step``, or variables that do not fit the network (see
      :func:`from_torch`). WeightsDownloadError: an official checkpoint cannot be downloaded.

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
      ValueError: weights: ...tiny hold a 'converse_dncnn' network, but the model is 'dncnn'
      >>> tmp.cleanup()
    """
    path = _local(weights)
    if step is not None and (path is None or not is_run(path)):
        raise ValueError(f"step: only a training workdir has steps to choose from; {weights} is not one")
    if path is None:
        _check_arch(weights, str(weights), arch)
        path = fetch(str(weights), progress=progress)
    if path.is_dir() and is_run(path):
        run = read_run(path, step)
        if loaded is not None:
            loaded["step"] = run.step
        _check_arch(weights, run.arch, arch)
        kwargs = {**run.model_kwargs, **model_kwargs}
        check_variables(run.variables, run.arch, **kwargs)
        return get_model(run.arch, **kwargs), run.variables
    if path.is_dir():
        held, variables = load_variables(path)
        check_finite(variables, path)
        _check_arch(weights, held, arch)
        saved = load_metadata(path).get(MODEL_KWARGS_KEY, {})
        if not isinstance(saved, dict):
            raise ValueError(f"weights: metadata[{MODEL_KWARGS_KEY!r}] of {path} must be a dict, got {saved!r}")
        kwargs = {**saved, **model_kwargs}
        check_variables(variables, held, **kwargs)
        return get_model(held, **kwargs), variables
    state_dict = read_pth(path)
    check_finite(state_dict, path)
    if arch is None:
        arch = infer_arch(state_dict)
    try:
        variables = from_torch(state_dict, arch, **model_kwargs)
    except ValueError as err:
        try:
            held = infer_arch(state_dict)
        except ValueError:
            raise err from None
        _check_arch(weights, held, arch)
        raise
    return get_model(arch, **model_kwargs), variables


def _check_arch(weights: Any, held: str, arch: str | None) -> None:
    if arch is not None and arch != held:
        raise ValueError(f"weights: {weights} hold a {held!r} network, but the model is {arch!r}")
