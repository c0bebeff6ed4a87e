"""Training config: Conv-USRNet (plausible construction), non-blind deblurring.

Recipe: ``configs.default.deblur_recipe`` (KAIR ``train_usrnet.json``).
The numbers and their sources: that function's docstring and ``configs/default.py``.
The network is given each example's blur kernel (``batch['kernel']``).

    python train.py --config=configs/conv_usrnet.py --workdir=runs/conv_usrnet
"""

from configs.default import deblur_recipe


def get_config():
    """The conv_usrnet training config (an ``ml_collections.ConfigDict``)."""
    return deblur_recipe(
        "conv_usrnet", 1_715_000, features=64, num_blocks=7, num_iterations=5, blur_kernel_size=7
    )
