"""Training config: ConvNet baseline, blind deblurring.

Recipe: ``configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.

    python train.py --config=configs/convnet.py --workdir=runs/convnet
"""

from configs.default import deblur_recipe


def get_config():
    """The convnet training config (an ``ml_collections.ConfigDict``)."""
    return deblur_recipe("convnet", 1_185_000, features=64, num_blocks=7, num_iterations=5)
