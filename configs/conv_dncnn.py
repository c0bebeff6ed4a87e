"""Training config: Conv-DnCNN baseline (depthwise k5 conv blocks), gray denoising at sigma 25.

Recipe: ``configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/conv_dncnn.py --workdir=runs/conv_dncnn
"""

from configs.default import denoise_recipe


def get_config():
    """The conv_dncnn training config (an ``ml_collections.ConfigDict``)."""
    return denoise_recipe("conv_dncnn", features=64, num_blocks=20)
