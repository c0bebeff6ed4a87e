"""Shorter (or longer) runs of a recipe: ``--steps N`` scales the schedule with the run.

``converse-jax train --steps N``, ``train.py --steps N`` and the demo's ``--steps N`` call
:func:`shorten`: the run becomes ``N`` steps and everything counted in steps follows it.

* **Milestones are scaled**: ``m -> max(1, round(m × N / S))`` with ``S`` the recipe's
  ``num_train_steps``, so each decay falls at the same fraction of the run (KAIR's DnCNN
  milestones 200k, 400k, … of 1,075,000 steps fall at 18.6 %, 37.2 %, … of any length).  A
  milestone the recipe has past its own end (KAIR's 2,000,000) stays past the end; the run warns
  about it at start (:func:`milestones_past_end`).
* **Log, evaluation and checkpoint intervals** shrink in the same proportion, but never below
  ``N / 100`` for the log and ``N / 10`` for evaluations and checkpoints (a 2,000-step run of a
  recipe that evaluates every 5,000 of 1,075,000 steps evaluates every 200, not every 9), and
  never grow past the recipe's.

Overriding ``--config.num_train_steps`` alone scales nothing; the run then warns about every
milestone it never reaches.
"""

from __future__ import annotations

import math

import ml_collections

__all__ = ["milestones_past_end", "shorten"]

_MAX_EVENTS = {"log_every_steps": 100, "eval_every_steps": 10, "checkpoint_every_steps": 10}
"""How many log records / evaluations / checkpoints a shortened run has at most, unless the
recipe's own intervals give fewer."""


def shorten(config: ml_collections.ConfigDict, steps: int) -> None:
    """Makes ``config`` a run of ``steps`` steps, its milestones and intervals scaled (in place).

    ``eval_every_steps = 0`` (never) stays 0.  See the module docstring for the rule.

    Example:
      >>> from converse_jax.configs import get_config
      >>> config = get_config("converse_dncnn")  # 1,075,000 steps, milestones 200k ... 2M
      >>> shorten(config, 2000)
      >>> config.num_train_steps, config.lr_milestones
      (2000, (372, 744, 1116, 1488, 1860, 3721))
      >>> config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps
      (20, 200, 200)
      >>> shorten(config, 0)
      Traceback (most recent call last):
      ...
      ValueError: --steps must be a positive integer, got 0
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {steps!r}")
    ratio = steps / config.num_train_steps
    config.num_train_steps = steps
    config.lr_milestones = tuple(sorted({max(1, round(m * ratio)) for m in config.lr_milestones}))
    for name, most in _MAX_EVENTS.items():
        interval = config[name]
        if interval:
            config[name] = min(interval, max(1, round(interval * ratio), math.ceil(steps / most)))


def milestones_past_end(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The milestones of ``config`` that the run never reaches (``m >= num_train_steps``).

    The rate of update ``c`` (0-based) decays at milestone ``m`` when ``c >= m``, so a milestone
    at or past ``num_train_steps`` never applies.

    Example:
      >>> from converse_jax.configs import get_config
      >>> milestones_past_end(get_config("converse_dncnn"))  # KAIR's last milestone, 2M of 1,075,000
      (2000000,)
      >>> config = get_config("demo")
      >>> config.num_train_steps = 500  # shortened without --steps: 580 and 660 never apply
      >>> milestones_past_end(config)
      (580, 660)
    """
    return tuple(m for m in config.lr_milestones if m >= config.num_train_steps)
