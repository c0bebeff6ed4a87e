"""Training config: ConverseNet, blind deblurring (released weights: 1,185,000 iterations).

Recipe: KAIR ``train_usrnet.json`` -- RGB 96x96 patches, batch 48, Adam 1e-4 halved at
100k/200k/300k/400k, L1; 7x7 motion / anisotropic Gaussian kernels (the ConverseNets' KernelNet
size), noise sigma ~ U(0, 25)/255, validation noise 2.55; EMA 0.999 (the issue's recipe).
Sources of the numbers and the common fields: ``configs/default.py``.

    python train.py --config=configs/conversenet.py --workdir=runs/conversenet
"""

from configs.default import USRNET_MILESTONES, base_config


def get_config():
    """The conversenet training config (an ``ml_collections.ConfigDict``)."""
    return base_config(
        "conversenet",
        "deblur",
        model_overrides={"features": 64, "num_blocks": 7, "num_iterations": 5},
        batch_size=48,
        num_train_steps=1_185_000,
        lr_milestones=USRNET_MILESTONES,
        channels=3, patch_size=96, kernel_size=7, noise_range=(0.0, 25.0), val_noise=2.55,
    )
