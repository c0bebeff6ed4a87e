"""Shared pieces of the training configs: ``base_config(model, task)`` and the KAIR recipes.

No training recipe was published with the paper (its repository has no training code), so the
configs start from the KAIR option files the networks come from (``shared/paper_notes.md``
section 6; KAIR ``options/train_*.json``):

* **Denoising** (``train_dncnn.json``): gray 40x40 patches, batch 64, AWGN sigma 25, Adam lr 1e-4
  halved at 200k/400k/600k/800k/1M/2M iterations, L1 loss.
* **SR x4** (``train_msrresnet_psnr.json``): RGB 96x96 HR patches (24x24 LR), batch 32, the same
  optimiser and milestones, L1, EMA of the weights with decay 0.999.
* **Deblurring** (``train_usrnet.json``, USRNet style): RGB 96x96 patches, batch 48, Adam 1e-4
  halved at 100k/200k/300k/400k.  The ConverseNets take 7x7 kernels (KernelNet is built for
  7x7), so kernels are 7x7 anisotropic Gaussian / motion kernels, noise sigma ~ U(0, 25)/255
  (KAIR's range, sf 1), validation noise 2.55 as the paper's deblurring table.

Common choices (the issue's recipe): L1 loss, EMA decay 0.999 for every network (KAIR uses it
for MSRResNet; evaluation and the best checkpoint use the EMA weights), no gradient clipping
(KAIR's ``G_optimizer_clipgrad`` is null), evaluation and checkpoints every 5,000 iterations
(KAIR's ``checkpoint_test``/``checkpoint_save``).  ``num_train_steps`` is the iteration of the
released checkpoint of that family (``<iter>_G.pth``: DnCNN family 1,075,000; SRResNet family
585,000; ConverseNet 1,185,000; USRNet 1,715,000), i.e. the length of the official run.

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

KAIR_MILESTONES = (200_000, 400_000, 600_000, 800_000, 1_000_000, 2_000_000)
"""``G_scheduler_milestones`` of KAIR's DnCNN and MSRResNet option files."""

USRNET_MILESTONES = (100_000, 200_000, 300_000, 400_000)
"""``G_scheduler_milestones`` of KAIR's USRNet option file."""


def data_config(task: str, **fields) -> ml_collections.ConfigDict:
    """``default_data_config(task)`` with ``fields`` set and None fields overridable."""
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
      data_task: ``'denoise'``, ``'sr'`` or ``'deblur'``.
      model_overrides: constructor arguments of the network (listed so they can be overridden
        with ``--config.model_overrides.NAME=VALUE``).
      batch_size: global batch size (all devices and processes together).
      num_train_steps: optimizer updates.
      lr_milestones: updates after which the learning rate is multiplied by ``lr_decay``.
      **data_fields: data config fields (``converse_jax.data.pipeline`` docstring).

    Returns:
      the config; the fields every training config has are listed in
      ``converse_jax.train.REQUIRED_FIELDS``.
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


def denoise_recipe(model: str, **model_overrides) -> ml_collections.ConfigDict:
    """KAIR ``train_dncnn.json``: gray 40x40 patches, batch 64, AWGN sigma 25, Adam 1e-4 halved at
    :data:`KAIR_MILESTONES`, L1, EMA 0.999; 1,075,000 updates (the released DnCNN-family iteration).

    ``model_overrides``: the network's constructor arguments, e.g. ``features=64, num_blocks=20``.
    """
    return base_config(
        model, "denoise", model_overrides=model_overrides, batch_size=64, num_train_steps=1_075_000,
        lr_milestones=KAIR_MILESTONES, channels=1, patch_size=40, sigma=25.0,
    )  # fmt: skip


def sr_recipe(model: str, **model_overrides) -> ml_collections.ConfigDict:
    """KAIR ``train_msrresnet_psnr.json``: RGB 96x96 HR patches (24x24 LR, MATLAB bicubic x4),
    batch 32, Adam 1e-4 halved at :data:`KAIR_MILESTONES`, L1, EMA 0.999; 585,000 updates (the
    released SRResNet-family iteration).
    """
    return base_config(
        model, "sr", model_overrides=model_overrides, batch_size=32, num_train_steps=585_000,
        lr_milestones=KAIR_MILESTONES, channels=3, patch_size=96, scale=4,
    )  # fmt: skip


def deblur_recipe(model: str, num_train_steps: int, **model_overrides) -> ml_collections.ConfigDict:
    """KAIR ``train_usrnet.json``: RGB 96x96 patches, batch 48, Adam 1e-4 halved at
    :data:`USRNET_MILESTONES`, L1, EMA 0.999; 7x7 motion / anisotropic Gaussian kernels (the
    ConverseNets' KernelNet size), noise sigma ~ U(0, 25)/255, validation noise 2.55.
    ``num_train_steps``: the released checkpoint's iteration of that family.
    """
    return base_config(
        model, "deblur", model_overrides=model_overrides, batch_size=48, num_train_steps=num_train_steps,
        lr_milestones=USRNET_MILESTONES, channels=3, patch_size=96, kernel_size=7, noise_range=(0.0, 25.0),
        val_noise=2.55,
    )  # fmt: skip
