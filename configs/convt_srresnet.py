"""The ``convt_srresnet`` training config, for ``python train.py --config=configs/convt_srresnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/convt_srresnet.py`` (``converse-jax train --config=convt_srresnet``).
"""

from converse_jax.configs.convt_srresnet import get_config  # noqa: F401
