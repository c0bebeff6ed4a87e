"""The ``converse_usrnet`` training config, for ``python train.py --config=configs/converse_usrnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/converse_usrnet.py`` (``converse-jax train --config=converse_usrnet``).
"""

from converse_jax.configs.converse_usrnet import get_config  # noqa: F401
