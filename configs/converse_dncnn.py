"""Training config: Converse-DnCNN, gray denoising at sigma 25 (released weights: 1,075,000 iterations).

Recipe: ``configs.default.denoise_recipe`` (KAIR ``train_dncnn.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/converse_dncnn.py --workdir=runs/converse_dncnn
"""

from configs.default import denoise_recipe


def get_config():
    """The converse_dncnn training config (an ``ml_collections.ConfigDict``)."""
    return denoise_recipe("converse_dncnn", features=64, num_blocks=20)
