"""Training config: ConvT-DnCNN baseline (depthwise k5 transposed-conv blocks), gray denoising at sigma 25.

Recipe: ``configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/convt_dncnn.py --workdir=runs/convt_dncnn
"""

from configs.default import denoise_recipe


def get_config():
    """The convt_dncnn training config (an ``ml_collections.ConfigDict``)."""
    return denoise_recipe("convt_dncnn", features=64, num_blocks=20)
