"""Training config: MSRResNet (KAIR MSRResNet1), x4 super-resolution.

Recipe: ``converse_jax.configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=msrresnet --workdir=runs/msrresnet
    python train.py --config=configs/msrresnet.py --workdir=runs/msrresnet   # the same, from a clone
"""

from converse_jax.configs.default import sr_recipe

__all__ = ["get_config"]


def get_config():
    """The msrresnet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'msrresnet'
    """
    return sr_recipe("msrresnet", features=64, num_blocks=16, upscale=4)
