"""Training config: MSRResNet with Converse2D up-samplers (up-sampler ablation), x4 super-resolution.

Recipe: ``converse_jax.configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``converse_jax/configs/default.py``.

    converse-jax train --config=converseup_msrresnet --workdir=runs/converseup_msrresnet
    python train.py --config=configs/converseup_msrresnet.py --workdir=runs/converseup_msrresnet   # the same, from a clone
"""

from converse_jax.configs.default import sr_recipe

__all__ = ["get_config"]


def get_config():
    """The converseup_msrresnet training config (an ``ml_collections.ConfigDict``).

    Example:
      >>> get_config().model
      'converseup_msrresnet'
    """
    return sr_recipe("converseup_msrresnet", features=64, num_blocks=16, upscale=4)
