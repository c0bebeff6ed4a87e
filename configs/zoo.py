"""The zoo's recipes, for ``python train.py --config=configs/zoo.py:NAME`` in a clone (NAME: a registered network).

The recipes live in the package: ``converse_jax/configs/zoo.py`` (``converse-jax train --config=NAME``).
"""

from converse_jax.configs.zoo import get_config  # noqa: F401
