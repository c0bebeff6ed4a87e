"""Training config: Conv-SRResNet baseline, x4 super-resolution.

Recipe: ``converse_jax.configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=conv_srresnet --workdir=runs/conv_srresnet
    python train.py --config=configs/conv_srresnet.py --workdir=runs/conv_srresnet   # the same, from a clone
"""

from converse_jax.configs.default import sr_recipe

__all__ = ["get_config"]


def get_config():
    """The conv_srresnet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'conv_srresnet'
    """
    return sr_recipe("conv_srresnet", features=64, num_blocks=16, upscale=4)
