"""The ``conv_usrnet`` training config, for ``python train.py --config=configs/conv_usrnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/conv_usrnet.py`` (``converse-jax train --config=conv_usrnet``).
"""

from converse_jax.configs.conv_usrnet import get_config  # noqa: F401
