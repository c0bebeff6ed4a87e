"""The ``conv_srresnet`` training config, for ``python train.py --config=configs/conv_srresnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/conv_srresnet.py`` (``converse-jax train --config=conv_srresnet``).
"""

from converse_jax.configs.conv_srresnet import get_config  # noqa: F401
