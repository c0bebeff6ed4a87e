"""The training recipes, installed with the package: ``get_config(NAME)`` and ``--config=NAME``.

A recipe's name is a registered network's (``converse_dncnn``, ``converse_srresnet``,
``conversenet``, ``converse_usrnet``, the baselines: :mod:`converse_jax.configs.zoo` builds each
from the network's record and its task) or ``demo`` (the small Converse-DnCNN of ``make demo``,
:mod:`converse_jax.configs.demo`). ``converse-jax train --config=NAME`` trains one from an
installed package; ``--config=FILE`` takes any config file instead, relative to the current
directory. The repository's top-level ``configs/`` holds thin files over these modules, for
``python train.py --config=configs/zoo.py:NAME`` and ``--config=configs/demo.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

__all__ = ["config_file", "config_names", "get_config"]

_HERE = Path(__file__).resolve().parent


def config_names() -> tuple[str, ...]:
    """The names of the packaged recipes: ``demo`` and every registered network's, sorted.

    Example:
      >>> names = config_names()
      >>> names[0], "converse_dncnn" in names, "converse_usrnet" in names
      ('demo', True, True)
    """
    from converse_jax.models import list_models  # deferred: building the list imports the zoo

    return ("demo", *list_models())


def config_file(name_or_file: str | os.PathLike) -> str:
    """The ``--config`` value ``name_or_file`` stands for: a config file, or a packaged recipe.

    An existing file wins (a path relative to the current directory is taken as such), also as
    ``FILE:ARG`` (``ml_collections`` passes ``ARG`` to the file's ``get_config``, as in
    ``configs/zoo.py:converse_dncnn``); otherwise ``demo`` is the packaged demo file and a
    registered network's name is its zoo recipe, ``.../configs/zoo.py:NAME``.

    Raises:
      ValueError: neither an existing file nor a packaged recipe's name; the message names
        ``--config`` and where the names are listed.

    Example:
      >>> Path(config_file("demo")).name, Path(config_file("conversenet")).name
      ('demo.py', 'zoo.py:conversenet')
      >>> config_file("nope")
      Traceback (most recent call last):
      ...
      ValueError: --config: 'nope' is neither a config file nor a packaged config (demo, converse_dncnn, ...: see converse_jax.configs.config_names())
    """
    text = os.fspath(name_or_file)
    if Path(text.partition(":")[0] if ":" in text else text).expanduser().is_file():
        return text
    if text == "demo":
        return str(_HERE / "demo.py")
    if text in config_names():
        return f"{_HERE / 'zoo.py'}:{text}"
    raise ValueError(
        f"--config: {text!r} is neither a config file nor a packaged config "
        "(demo, converse_dncnn, ...: see converse_jax.configs.config_names())"
    )


def get_config(name: str) -> ml_collections.ConfigDict:
    """The packaged recipe ``name`` (one of :func:`config_names`), freshly built.

    Example:
      >>> config = get_config("converse_dncnn")
      >>> config.model, config.batch_size, config.model_overrides.num_blocks
      ('converse_dncnn', 64, 20)
    """
    from converse_jax.configs import demo, zoo

    if name not in config_names():
        raise ValueError(f"name: unknown config {name!r}; packaged configs: {', '.join(config_names())}")
    return demo.get_config() if name == "demo" else zoo.get_config(name)
