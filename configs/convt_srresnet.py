"""Training config: ConvT-SRResNet baseline, x4 super-resolution.

Recipe: ``configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/convt_srresnet.py --workdir=runs/convt_srresnet
"""

from configs.default import sr_recipe


def get_config():
    """The convt_srresnet training config (an ``ml_collections.ConfigDict``)."""
    return sr_recipe("convt_srresnet", features=64, num_blocks=16, upscale=4)
