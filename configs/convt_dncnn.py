"""Training config: ConvT-DnCNN baseline (depthwise k5 transposed-conv blocks), gray denoising at sigma 25.

Recipe: KAIR ``train_dncnn.json`` -- gray 40x40 patches, batch 64, sigma 25, Adam 1e-4 halved at
200k/400k/600k/800k/1M/2M, L1; EMA 0.999 (the issue's recipe).
Sources of the numbers and the common fields: ``configs/default.py``.

    python train.py --config=configs/convt_dncnn.py --workdir=runs/convt_dncnn
"""

from configs.default import KAIR_MILESTONES, base_config


def get_config():
    """The convt_dncnn training config (an ``ml_collections.ConfigDict``)."""
    return base_config(
        "convt_dncnn",
        "denoise",
        model_overrides={"features": 64, "num_blocks": 20},
        batch_size=64,
        num_train_steps=1_075_000,
        lr_milestones=KAIR_MILESTONES,
        channels=1, patch_size=40, sigma=25.0,
    )
