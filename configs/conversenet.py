"""Training config: ConverseNet, blind deblurring (released weights: 1,185,000 iterations).

Recipe: ``configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/conversenet.py --workdir=runs/conversenet
"""

from configs.default import deblur_recipe


def get_config():
    """The conversenet training config (an ``ml_collections.ConfigDict``)."""
    return deblur_recipe("conversenet", 1_185_000, features=64, num_blocks=7, num_iterations=5)
