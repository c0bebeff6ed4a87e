"""The ``converse_dncnn`` training config, for ``python train.py --config=configs/converse_dncnn.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/converse_dncnn.py`` (``converse-jax train --config=converse_dncnn``).
"""

from converse_jax.configs.converse_dncnn import get_config  # noqa: F401
