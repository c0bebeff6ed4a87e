"""Training config: Converse-USRNet, non-blind deblurring (released weights: 1,715,000 iterations).

Recipe: ``configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.
The network is given each example's blur kernel (``batch['kernel']``).

    python train.py --config=configs/converse_usrnet.py --workdir=runs/converse_usrnet
"""

from configs.default import deblur_recipe


def get_config():
    """The converse_usrnet training config (an ``ml_collections.ConfigDict``)."""
    return deblur_recipe(
        "converse_usrnet", 1_715_000, features=64, num_blocks=7, num_iterations=5, blur_kernel_size=7
    )
