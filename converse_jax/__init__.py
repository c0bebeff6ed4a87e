"""converse-jax: Reverse Convolution (Converse2D) and the ConverseNets in JAX/Flax.

The public API, importable from here; each name is imported on first use (PEP 562), so
``from converse_jax import converse2d`` loads JAX alone (no Flax, no orbax):

* the operator: :func:`converse2d`, :func:`converse2d_reference` (:mod:`converse_jax.ops`);
* Flax layers: :class:`Converse2D`, :class:`ConverseBlock` (:mod:`converse_jax.nn`);
* the zoo: :func:`get_model`, :func:`list_models`, :func:`get_spec`, :func:`register_model`,
  :class:`ModelSpec`, :class:`PretrainedCfg` (:mod:`converse_jax.models`);
* tasks: :func:`get_task`, :func:`list_tasks`, :func:`register_task`, :class:`Task`
  (:mod:`converse_jax.tasks`);
* weights: :func:`load` (a name, ``.pth``, variable store or training run;
  :mod:`converse_jax.pretrained`);
* inference: :class:`Restorer`, :func:`evaluate` (the paper's test protocol),
  :func:`export_restorer` / :func:`load_exported` (:mod:`converse_jax.inference`);
* training: :func:`train_and_evaluate` (:mod:`converse_jax.train`), the recipes
  :func:`get_config` (:mod:`converse_jax.configs`).

Everything else is reached through its module; the programs (:mod:`converse_jax.cli`) and
:mod:`converse_jax.utils` are internal.

>>> import converse_jax
>>> converse_jax.get_model("converse_dncnn", num_blocks=2).num_blocks
2
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API: dict[str, str] = {
    "converse2d": "converse_jax.ops",
    "converse2d_reference": "converse_jax.ops",
    "Converse2D": "converse_jax.nn",
    "ConverseBlock": "converse_jax.nn",
    "ModelSpec": "converse_jax.models",
    "PretrainedCfg": "converse_jax.models",
    "get_model": "converse_jax.models",
    "get_spec": "converse_jax.models",
    "list_models": "converse_jax.models",
    "register_model": "converse_jax.models",
    "Task": "converse_jax.tasks",
    "get_task": "converse_jax.tasks",
    "list_tasks": "converse_jax.tasks",
    "register_task": "converse_jax.tasks",
    "load": "converse_jax.pretrained",
    "Restorer": "converse_jax.inference.restorer",
    "evaluate": "converse_jax.inference.evaluate",
    "export_restorer": "converse_jax.inference.export",
    "load_exported": "converse_jax.inference.export",
    "train_and_evaluate": "converse_jax.train",
    "get_config": "converse_jax.configs",
}
"""Public name -> the module that defines (or exports) it."""

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    """Imports the module of public name ``name`` on first use (PEP 562) and caches the name here."""
    if name not in _API:
        raise AttributeError(f"module 'converse_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
