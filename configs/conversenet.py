"""The ``conversenet`` training config, for ``python train.py --config=configs/conversenet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/conversenet.py`` (``converse-jax train --config=conversenet``).
"""

from converse_jax.configs.conversenet import get_config  # noqa: F401
