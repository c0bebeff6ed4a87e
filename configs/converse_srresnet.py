"""Training config: Converse-SRResNet, x4 super-resolution (released weights: 585,000 iterations).

Recipe: KAIR ``train_msrresnet_psnr.json`` -- RGB 96x96 HR patches (24x24 LR, MATLAB bicubic x4),
batch 32, Adam 1e-4 halved at 200k/400k/600k/800k/1M/2M, L1, EMA 0.999.
Sources of the numbers and the common fields: ``configs/default.py``.

    python train.py --config=configs/converse_srresnet.py --workdir=runs/converse_srresnet
"""

from configs.default import KAIR_MILESTONES, base_config


def get_config():
    """The converse_srresnet training config (an ``ml_collections.ConfigDict``)."""
    return base_config(
        "converse_srresnet",
        "sr",
        model_overrides={"features": 64, "num_blocks": 16, "upscale": 4},
        batch_size=32,
        num_train_steps=585_000,
        lr_milestones=KAIR_MILESTONES,
        channels=3, patch_size=96, scale=4,
    )
