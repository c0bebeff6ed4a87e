"""The training recipes, installed with the package: one module per config, each a ``get_config()``.

``converse_jax/configs/NAME.py`` builds the config ``NAME`` (an ``ml_collections.ConfigDict``):
one per network of the zoo (``converse_dncnn``, ``converse_srresnet``, ``conversenet``,
``converse_usrnet`` and the baselines, at the KAIR recipes of :mod:`converse_jax.configs.default`)
and ``demo`` (the small Converse-DnCNN of ``make demo``).  ``converse-jax train --config=NAME``
trains one from an installed package; ``--config=FILE`` takes any config file instead, relative
to the current directory.  The repository's top-level ``configs/NAME.py`` are thin files over
these modules, for ``python train.py --config=configs/NAME.py``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import ml_collections

__all__ = ["CONFIG_NAMES", "config_file", "get_config"]

_HERE = Path(__file__).resolve().parent

CONFIG_NAMES: tuple[str, ...] = tuple(
    sorted(p.stem for p in _HERE.glob("*.py") if p.stem not in ("__init__", "default"))
)
"""The names of the packaged configs (``converse_jax/configs/NAME.py``)."""


def config_file(name_or_file: str | os.PathLike) -> Path:
    """The config file ``name_or_file`` stands for: a packaged config's name, or a file path.

    An existing file wins (a path relative to the current directory is taken as such); otherwise
    a bare name (no ``/``, no ``.py``) is looked up among :data:`CONFIG_NAMES`.

    Raises:
      ValueError: neither an existing file nor a packaged config's name; the message names
        ``--config`` and lists the packaged names.

    Example:
      >>> config_file("demo").name
      'demo.py'
      >>> config_file("nope")
      Traceback (most recent call last):
      ...
      ValueError: --config: 'nope' is neither a config file nor a packaged config (demo, converse_dncnn, ...: see converse_jax.configs.CONFIG_NAMES)
    """
    text = os.fspath(name_or_file)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if text in CONFIG_NAMES:
        return _HERE / f"{text}.py"
    raise ValueError(
        f"--config: {text!r} is neither a config file nor a packaged config "
        "(demo, converse_dncnn, ...: see converse_jax.configs.CONFIG_NAMES)"
    )


def get_config(name: str) -> ml_collections.ConfigDict:
    """The packaged config ``name`` (one of :data:`CONFIG_NAMES`), freshly built.

    Example:
      >>> config = get_config("converse_dncnn")
      >>> config.model, config.batch_size, config.model_overrides.num_blocks
      ('converse_dncnn', 64, 20)
    """
    if name not in CONFIG_NAMES:
        raise ValueError(f"name: unknown config {name!r}; packaged configs: {', '.join(CONFIG_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").get_config()
