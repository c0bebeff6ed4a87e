"""Training config: Converse-SRResNet, x4 super-resolution (released weights: 585,000 iterations).

Recipe: ``converse_jax.configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=converse_srresnet --workdir=runs/converse_srresnet
    python train.py --config=configs/converse_srresnet.py --workdir=runs/converse_srresnet   # the same, from a clone
"""

from converse_jax.configs.default import sr_recipe

__all__ = ["get_config"]


def get_config():
    """The converse_srresnet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'converse_srresnet'
    """
    return sr_recipe("converse_srresnet", features=64, num_blocks=16, upscale=4)
