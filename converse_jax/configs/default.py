"""The shape of every training config: ``base_config(model, data_task, ...)``, and ``data_config``.

No training recipe was published with the paper (its repository has no training code), so the
recipes start from the KAIR option files the networks come from (``shared/paper_notes.md``
section 6); each task states its own (:attr:`converse_jax.tasks.Task.recipe`: batch size,
updates, learning-rate milestones; :mod:`converse_jax.tasks.denoise`, :mod:`~converse_jax.tasks.sr`,
:mod:`~converse_jax.tasks.deblur`), and :mod:`converse_jax.configs.zoo` builds a network's recipe
from its record and its task.

Common choices (the issue's recipe), set here for every config: L1 loss, Adam at 1e-4 with the
rate halved at each milestone, EMA decay 0.999 for every network (KAIR uses it for MSRResNet;
evaluation and the best checkpoint use the EMA weights), no gradient clipping (KAIR's
``G_optimizer_clipgrad`` is null), evaluation and checkpoints every 5,000 iterations (KAIR's
``checkpoint_test``/``checkpoint_save``).

Every field of the returned config is overridable on the command line, e.g.
``converse-jax train --config=converse_dncnn --workdir=runs/dncnn --config.batch_size=128
--config.data.source=folder --config.data.train_dir=/data/BSD400 --config.data.val_dir=/data/Set12``.
"""

from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

from converse_jax.data import default_data_config

# Data fields whose default is None, with the type a command-line override gives them
# (ml_collections can only override a None field through a typed placeholder).
_NONE_FIELD_TYPES = {
    "train_dir": str,
    "val_dir": str,
    "tfds_name": str,
    "tfds_data_dir": str,
    "sigma_range": tuple,
    "val_max_images": int,
    "val_crop": int,
}


def data_config(task: str, **fields) -> ml_collections.ConfigDict:
    """``default_data_config(task)`` with ``fields`` set and None fields overridable.

    >>> data_config("sr", scale=2).scale
    2
    """
    cfg = default_data_config(task)
    for key, value in fields.items():
        if key not in cfg:
            raise ValueError(f"unknown data field {key!r}; known: {sorted(cfg.keys())}")
        cfg[key] = value
    for key, typ in _NONE_FIELD_TYPES.items():
        if key in cfg and cfg[key] is None:
            cfg[key] = placeholder(typ)
    return cfg


def base_config(
    model: str,
    data_task: str,
    *,
    model_overrides: dict | None = None,
    batch_size: int,
    num_train_steps: int,
    lr_milestones: tuple[int, ...],
    **data_fields,
) -> ml_collections.ConfigDict:
    """A full training config for registry network ``model`` on data task ``data_task``.

    Args:
      model: registry name (``converse_jax.models.MODELS``).
      data_task: the task of the data (``'denoise'``, ``'sr'``, ``'deblur'``, ...).
      model_overrides: constructor arguments of the network (listed so they can be overridden
        with ``--config.model_overrides.NAME=VALUE``).
      batch_size: global batch size (all devices and processes together).
      num_train_steps: optimizer updates.
      lr_milestones: updates after which the learning rate is multiplied by ``lr_decay``.
      **data_fields: data config fields (``converse_jax.data.pipeline`` docstring).

    Returns:
      the config; the fields every training config has are listed in
      ``converse_jax.train.REQUIRED_FIELDS``.

    Example:
      >>> config = base_config("converse_dncnn", "denoise", model_overrides={"features": 16}, batch_size=8,
      ...                      num_train_steps=100, lr_milestones=(50,), patch_size=32)
      >>> config.model_overrides.features, config.data.patch_size, config.data.sigma, config.ema_decay
      (16, 32, 25.0, 0.999)
    """
    config = ml_collections.ConfigDict()
    config.model = model
    config.model_overrides = ml_collections.ConfigDict(model_overrides or {})
    config.data = data_config(data_task, **data_fields)
    config.batch_size = batch_size
    config.num_train_steps = num_train_steps
    config.learning_rate = 1e-4
    config.lr_milestones = tuple(lr_milestones)
    config.lr_decay = 0.5
    config.grad_clip_norm = 0.0  # 0: no clipping
    config.ema_decay = 0.999
    config.log_every_steps = 100
    config.eval_every_steps = 5_000
    config.checkpoint_every_steps = 5_000
    config.keep_checkpoints = 3
    config.seed = 0
    config.remat = False
    config.on_nonfinite = "stop"  # a NaN/inf loss or gradient stops the run ('skip': skip that update)
    # computation dtype of the network (None: the data's float32; "bfloat16": mixed precision with
    # float32 parameters and optimizer state); a typed placeholder so --config.dtype=bfloat16 works
    config.dtype = placeholder(str)
    # memory of the train step (converse_jax.train.memory), compared with the device's before the first step
    config.grad_accum_steps = 1  # the global batch runs as this many micro-batches, their gradients averaged
    config.fit_memory = "stop"  # a step too large: 'stop' (one line with the fix), 'auto' (apply it), 'off'
    config.memory_limit_gb = 0.0  # plan for at most this many GiB per device (0: what the device has)
    return config
