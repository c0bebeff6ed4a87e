"""Training config: Conv-DnCNN baseline (depthwise k5 conv blocks), gray denoising at sigma 25.

Recipe: ``converse_jax.configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=conv_dncnn --workdir=runs/conv_dncnn
    python train.py --config=configs/conv_dncnn.py --workdir=runs/conv_dncnn   # the same, from a clone
"""

from converse_jax.configs.default import denoise_recipe

__all__ = ["get_config"]


def get_config():
    """The conv_dncnn training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'conv_dncnn'
    """
    return denoise_recipe("conv_dncnn", features=64, num_blocks=20)
