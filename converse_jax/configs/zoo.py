"""The training recipes of the zoo, generated from the records: ``get_config(NAME)``.

The recipe of a registered network ``NAME`` (the zoo's, or yours once its module is imported) is
:func:`converse_jax.configs.default.base_config` with

* the task's recipe (:attr:`converse_jax.tasks.Task.recipe`: batch size, updates, milestones;
  KAIR's option files, stated in :mod:`converse_jax.tasks.denoise`, :mod:`~converse_jax.tasks.sr`
  and :mod:`~converse_jax.tasks.deblur`), updated by the record's own
  (:attr:`converse_jax.models.ModelSpec.recipe`);
* data of the task (``data.task = task.data_task``) that fits the network: its channels, and
  the SR scale / blur kernel size its hyper-parameters set
  (:meth:`~converse_jax.models.ModelSpec.data_values`);
* ``model_overrides``: every hyper-parameter of the class with a plain default (bool, int,
  float, str; not ``remat``/``dtype``, which have their own fields), at its default -- so each is
  overridable with ``--config.model_overrides.NAME=VALUE``.

From the command line::

    converse-jax train --config=converse_dncnn --workdir=runs/converse_dncnn
    python train.py --config=configs/zoo.py:converse_dncnn --workdir=runs/converse_dncnn   # the same, from a clone

and for a network of your own, in a config file that imports its module::

    import my_network                               # registers "my_network"
    from converse_jax.configs.zoo import get_config  # get_config("my_network"): its recipe
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from converse_jax.configs.default import base_config
from converse_jax.data import default_data_config
from converse_jax.models import get_spec
from converse_jax.models.registry import ModelSpec
from converse_jax.tasks import get_task

__all__ = ["get_config", "model_overrides"]

_OWN_FIELDS = ("remat", "dtype", "param_dtype", "parent", "name")  # config.remat / config.dtype, or not settable


def model_overrides(spec: ModelSpec) -> dict[str, Any]:
    """The hyper-parameters of ``spec.cls`` with a plain (bool, int, float, str) default, at their defaults.

    Example:
      >>> model_overrides(get_spec("dncnn"))
      {'in_channels': 1, 'features': 64, 'num_layers': 17}
    """
    return {
        f.name: f.default for f in dataclasses.fields(spec.cls)
        if f.init and f.name not in _OWN_FIELDS and isinstance(f.default, (bool, int, float, str))
    }  # fmt: skip


def get_config(name: str) -> ml_collections.ConfigDict:
    """The training recipe of the registered network ``name`` (see the module docstring).

    Example:
      >>> config = get_config("converse_usrnet")
      >>> config.data.task, config.batch_size, config.num_train_steps, config.data.kernel_size
      ('deblur', 48, 1715000, 7)
      >>> config.model_overrides.num_blocks, config.model_overrides.blur_kernel_size
      (7, 7)
      >>> get_config("converse_srresnet").data.scale, get_config("dncnn").data.channels
      (4, 1)
    """
    spec = get_spec(name)
    task = get_task(spec.task)
    fields = default_data_config(task.data_task)
    data = {key: value for key, value in spec.data_values().items() if key in fields}
    settings = {**data, **task.recipe, **spec.recipe}  # the record's recipe wins, then the task's
    return base_config(name, task.data_task, model_overrides=model_overrides(spec), **settings)
