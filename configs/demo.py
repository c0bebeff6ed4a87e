"""The ``demo`` training config, for ``python train.py --config=configs/demo.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/demo.py`` (``converse-jax train --config=demo``).
"""

from converse_jax.configs.demo import get_config  # noqa: F401
