"""Demo config: a small Converse-DnCNN that trains in minutes on two CPU cores.

Run by ``make demo`` (``python -m converse_jax.cli.demo``).  Gray denoising at sigma 25 on the
scikit-image sample photographs embedded in its wheel (nothing downloaded); validation on the
held-out camera, chelsea and coins (256x256 centre crops).

Every choice trades PSNR against CPU time (the measurements behind them: ``docs/benchmarks.md``,
"The demo"):

* network: ``converse_dncnn`` with 16 features and 4 blocks (kernel 7, padding 6, circular, as
  the released model);
* ``eps`` (the floor of the Converse2D regulariser lambda) 0.1 instead of 1e-5: lambda starts at
  sigmoid(-9) ~ 1e-4, i.e. every Converse2D layer starts as a near-inverse filter of its random
  kernel, which a few hundred steps cannot tame; with the floor the layers start well
  conditioned;
* Adam at 1e-2 (100x KAIR's 1e-4), halved three times in the last third;
* batch 8 of 40x40 patches for 700 steps (more, smaller steps at equal CPU time);
* EMA decay 0.99 (0.999 would average over more steps than the run has).
"""

from converse_jax.configs.default import base_config

__all__ = ["get_config"]


def get_config():
    """The demo config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'converse_dncnn'
    """
    config = base_config(
        "converse_dncnn",
        "denoise",
        model_overrides={"features": 16, "num_blocks": 4, "eps": 0.1},
        batch_size=8,
        num_train_steps=700,
        lr_milestones=(460, 580, 660),
        channels=1,
        patch_size=40,
        sigma=25.0,
        val_crop=256,
        num_threads=1,
        prefetch_buffer_size=2,
    )
    config.learning_rate = 1e-2
    config.ema_decay = 0.99
    config.log_every_steps = 25
    config.eval_every_steps = 100
    config.checkpoint_every_steps = 200
    config.keep_checkpoints = 1
    return config
