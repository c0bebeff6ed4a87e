"""The ``converse_srresnet`` training config, for ``python train.py --config=configs/converse_srresnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/converse_srresnet.py`` (``converse-jax train --config=converse_srresnet``).
"""

from converse_jax.configs.converse_srresnet import get_config  # noqa: F401
