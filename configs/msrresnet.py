"""Training config: MSRResNet (KAIR MSRResNet1), x4 super-resolution.

Recipe: ``configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/msrresnet.py --workdir=runs/msrresnet
"""

from configs.default import sr_recipe


def get_config():
    """The msrresnet training config (an ``ml_collections.ConfigDict``)."""
    return sr_recipe("msrresnet", features=64, num_blocks=16, upscale=4)
