"""The ``converseup_msrresnet`` training config, for ``python train.py --config=configs/converseup_msrresnet.py`` in a clone.

The recipe lives in the package: ``converse_jax/configs/converseup_msrresnet.py`` (``converse-jax train --config=converseup_msrresnet``).
"""

from converse_jax.configs.converseup_msrresnet import get_config  # noqa: F401
