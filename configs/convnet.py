"""The ``convnet`` training config, for ``python train.py --config=configs/convnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/convnet.py`` (``converse-jax train --config=convnet``).
"""

from converse_jax.configs.convnet import get_config  # noqa: F401
