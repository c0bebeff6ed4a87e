"""Training config: Converse-SRResNet, x4 super-resolution (released weights: 585,000 iterations).

Recipe: ``configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/converse_srresnet.py --workdir=runs/converse_srresnet
"""

from configs.default import sr_recipe


def get_config():
    """The converse_srresnet training config (an ``ml_collections.ConfigDict``)."""
    return sr_recipe("converse_srresnet", features=64, num_blocks=16, upscale=4)
