"""Training config: Conv-USRNet (plausible construction), non-blind deblurring.

Recipe: ``converse_jax.configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.
The network is given each example's blur kernel (``batch['kernel']``).

    converse-jax train --config=conv_usrnet --workdir=runs/conv_usrnet
    python train.py --config=configs/conv_usrnet.py --workdir=runs/conv_usrnet   # the same, from a clone
"""

from converse_jax.configs.default import deblur_recipe

__all__ = ["get_config"]


def get_config():
    """The conv_usrnet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'conv_usrnet'
    """
    return deblur_recipe(
        "conv_usrnet", 1_715_000, features=64, num_blocks=7, num_iterations=5, blur_kernel_size=7
    )
