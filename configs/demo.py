"""Demo config: a small Converse-DnCNN trained on two CPU cores in about three minutes.

Run by ``make demo`` (``python -m converse_jax.demo``).  Gray denoising at sigma 25 on the
scikit-image sample photographs embedded in its wheel (nothing downloaded); validation on the
held-out camera, chelsea and coins (256x256 centre crops).

Throughput decides everything on two cores, so the network is narrow and shallow, patches are
small, and the learning rate is 10x KAIR's (1e-3, halved late in the run) -- see the numbers in
``converse_jax/demo.py``'s docstring for what it reaches.
"""

from configs.default import base_config


def get_config():
    """The demo config (an ``ml_collections.ConfigDict``)."""
    config = base_config(
        "converse_dncnn",
        "denoise",
        model_overrides={"features": 16, "num_blocks": 4},
        batch_size=16,
        num_train_steps=600,
        lr_milestones=(400, 500),
        channels=1,
        patch_size=40,
        sigma=25.0,
        val_crop=256,
        num_threads=1,
        prefetch_buffer_size=2,
    )
    config.learning_rate = 1e-3
    config.ema_decay = 0.99
    config.log_every_steps = 25
    config.eval_every_steps = 100
    config.checkpoint_every_steps = 200
    config.keep_checkpoints = 1
    return config
