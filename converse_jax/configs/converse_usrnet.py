"""Training config: Converse-USRNet, non-blind deblurring (released weights: 1,715,000 iterations).

Recipe: ``converse_jax.configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.
The network is given each example's blur kernel (``batch['kernel']``).

    converse-jax train --config=converse_usrnet --workdir=runs/converse_usrnet
    python train.py --config=configs/converse_usrnet.py --workdir=runs/converse_usrnet   # the same, from a clone
"""

from converse_jax.configs.default import deblur_recipe

__all__ = ["get_config"]


def get_config():
    """The converse_usrnet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'converse_usrnet'
    """
    return deblur_recipe(
        "converse_usrnet", 1_715_000, features=64, num_blocks=7, num_iterations=5, blur_kernel_size=7
    )
