"""The shared pieces of the training configs, for config files written in a clone.

They live in the package: ``converse_jax/configs/default.py`` (``base_config`` and the KAIR recipes).
"""

from converse_jax.configs.default import base_config, data_config, deblur_recipe, denoise_recipe, sr_recipe  # noqa: F401
