"""The ``convt_dncnn`` training config, for ``python train.py --config=configs/convt_dncnn.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/convt_dncnn.py`` (``converse-jax train --config=convt_dncnn``).
"""

from converse_jax.configs.convt_dncnn import get_config  # noqa: F401
