"""Training config: DnCNN (KAIR, 17 layers with BatchNorm), gray denoising at sigma 25.

Recipe: ``configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/dncnn.py --workdir=runs/dncnn
"""

from configs.default import denoise_recipe


def get_config():
    """The dncnn training config (an ``ml_collections.ConfigDict``)."""
    return denoise_recipe("dncnn", features=64, num_layers=17)
