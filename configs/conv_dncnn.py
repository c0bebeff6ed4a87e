"""The ``conv_dncnn`` training config, for ``python train.py --config=configs/conv_dncnn.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/conv_dncnn.py`` (``converse-jax train --config=conv_dncnn``).
"""

from converse_jax.configs.conv_dncnn import get_config  # noqa: F401
