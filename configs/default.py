"""The shared pieces of the training configs, for config files written in a clone.

They live in the package: ``converse_jax/configs/default.py`` (``base_config``, ``data_config``);
a registered network's recipe is ``converse_jax.configs.zoo.get_config(NAME)``.
"""

from converse_jax.configs.default import base_config, data_config  # noqa: F401
