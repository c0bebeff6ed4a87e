"""Training config: ConvNet baseline, blind deblurring.

Recipe: ``converse_jax.configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=convnet --workdir=runs/convnet
    python train.py --config=configs/convnet.py --workdir=runs/convnet   # the same, from a clone
"""

from converse_jax.configs.default import deblur_recipe

__all__ = ["get_config"]


def get_config():
    """The convnet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'convnet'
    """
    return deblur_recipe("convnet", 1_185_000, features=64, num_blocks=7, num_iterations=5)
