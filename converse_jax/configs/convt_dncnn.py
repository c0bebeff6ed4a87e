"""Training config: ConvT-DnCNN baseline (depthwise k5 transposed-conv blocks), gray denoising at sigma 25.

Recipe: ``converse_jax.configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=convt_dncnn --workdir=runs/convt_dncnn
    python train.py --config=configs/convt_dncnn.py --workdir=runs/convt_dncnn   # the same, from a clone
"""

from converse_jax.configs.default import denoise_recipe

__all__ = ["get_config"]


def get_config():
    """The convt_dncnn training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'convt_dncnn'
    """
    return denoise_recipe("convt_dncnn", features=64, num_blocks=20)
