"""Training config: Converse-DnCNN, gray denoising at sigma 25 (released weights: 1,075,000 iterations).

Recipe: ``converse_jax.configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=converse_dncnn --workdir=runs/converse_dncnn
    python train.py --config=configs/converse_dncnn.py --workdir=runs/converse_dncnn   # the same, from a clone
"""

from converse_jax.configs.default import denoise_recipe

__all__ = ["get_config"]


def get_config():
    """The converse_dncnn training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'converse_dncnn'
    """
    return denoise_recipe("converse_dncnn", features=64, num_blocks=20)
