"""The ``msrresnet`` training config, for ``python train.py --config=configs/msrresnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/msrresnet.py`` (``converse-jax train --config=msrresnet``).
"""

from converse_jax.configs.msrresnet import get_config  # noqa: F401
