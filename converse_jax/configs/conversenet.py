"""Training config: ConverseNet, blind deblurring (released weights: 1,185,000 iterations).

Recipe: ``converse_jax.configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=conversenet --workdir=runs/conversenet
    python train.py --config=configs/conversenet.py --workdir=runs/conversenet   # the same, from a clone
"""

from converse_jax.configs.default import deblur_recipe

__all__ = ["get_config"]


def get_config():
    """The conversenet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'conversenet'
    """
    return deblur_recipe("conversenet", 1_185_000, features=64, num_blocks=7, num_iterations=5)
