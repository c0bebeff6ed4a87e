"""Training config: Converse-USRNet, non-blind deblurring (released weights: 1,715,000 iterations).

Recipe: KAIR ``train_usrnet.json`` -- RGB 96x96 patches, batch 48, Adam 1e-4 halved at
100k/200k/300k/400k, L1; 7x7 motion / anisotropic Gaussian kernels (the ConverseNets' KernelNet
size), noise sigma ~ U(0, 25)/255, validation noise 2.55; EMA 0.999 (the issue's recipe).
The network is given each example's blur kernel (``batch['kernel']``).
Sources of the numbers and the common fields: ``configs/default.py``.

    python train.py --config=configs/converse_usrnet.py --workdir=runs/converse_usrnet
"""

from configs.default import USRNET_MILESTONES, base_config


def get_config():
    """The converse_usrnet training config (an ``ml_collections.ConfigDict``)."""
    return base_config(
        "converse_usrnet",
        "deblur",
        model_overrides={"features": 64, "num_blocks": 7, "num_iterations": 5, "blur_kernel_size": 7},
        batch_size=48,
        num_train_steps=1_715_000,
        lr_milestones=USRNET_MILESTONES,
        channels=3, patch_size=96, kernel_size=7, noise_range=(0.0, 25.0), val_noise=2.55,
    )
