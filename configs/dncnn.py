"""The ``dncnn`` training config, for ``python train.py --config=configs/dncnn.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/dncnn.py`` (``converse-jax train --config=dncnn``).
"""

from converse_jax.configs.dncnn import get_config  # noqa: F401
