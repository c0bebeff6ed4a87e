"""Training config: MSRResNet with Converse2D up-samplers (up-sampler ablation), x4 super-resolution.

Recipe: ``configs.default.sr_recipe`` (KAIR ``train_msrresnet_psnr.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/converseup_msrresnet.py --workdir=runs/converseup_msrresnet
"""

from configs.default import sr_recipe


def get_config():
    """The converseup_msrresnet training config (an ``ml_collections.ConfigDict``)."""
    return sr_recipe("converseup_msrresnet", features=64, num_blocks=16, upscale=4)
