"""Training config: DnCNN (KAIR, 17 layers with BatchNorm), gray denoising at sigma 25.

Recipe: ``converse_jax.configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=dncnn --workdir=runs/dncnn
    python train.py --config=configs/dncnn.py --workdir=runs/dncnn   # the same, from a clone
"""

from converse_jax.configs.default import denoise_recipe

__all__ = ["get_config"]


def get_config():
    """The dncnn training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'dncnn'
    """
    return denoise_recipe("dncnn", features=64, num_layers=17)
