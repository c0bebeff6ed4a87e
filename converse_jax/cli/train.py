"""The training program: ``converse-jax train`` (and ``python train.py`` in a clone, the same program).

    converse-jax train --config=NAME_OR_FILE --workdir=DIR [--steps=N] [--config.FIELD=VALUE ...]

``--config`` is a packaged recipe's name (``demo``, ``converse_dncnn``, ... :
:func:`converse_jax.configs.config_names`) or a config file (a ``get_config()``); any field is
overridable with ``--config.FIELD=VALUE``; the fields are documented in ``docs/training.md`` and
in ``converse_jax/configs/default.py`` (``base_config``).  ``--steps=N`` shortens (or lengthens)
the recipe to N steps with its learning-rate milestones and intervals scaled
(:mod:`converse_jax.train.shorten`).  Every path (the config file, ``--workdir``, data
folders in the config) is taken relative to the current directory.  Before the first step the
train step's memory is compared with the device's (:mod:`converse_jax.train.memory`: a step
that does not fit stops the run with the setting that would, unless
``--config.fit_memory=auto`` applies it).  The run resumes from the
latest checkpoint in ``--workdir`` and writes ``metrics.jsonl`` and TensorBoard events there
(:mod:`converse_jax.train.loop`); it ends with a line naming its best checkpoint and the
command that evaluates it.  Multi-host jobs: one process per host with
``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` (or the environment
variables ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``); Slurm, Open MPI
and Cloud TPU pods are detected automatically.

The flags are absl flags, defined on first use (:func:`define_flags`) so that importing this
module defines nothing.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
from collections.abc import Sequence
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from converse_jax.configs import config_file, config_names
from converse_jax.utils.host_memory import keep_freed_memory

__all__ = ["define_flags", "error_line", "main", "resolve_config_argv"]


def resolve_config_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of ``--config`` (``--config=X`` or ``--config X``) made a file path.

    A packaged config's name becomes its installed file; an existing file stays as given.

    Raises:
      ValueError: the value is neither (the message names ``--config``).

    Example:
      >>> argv = resolve_config_argv(["--config=demo", "--workdir=run", "--config.batch_size=4"])
      >>> argv[0].endswith("converse_jax/configs/demo.py"), argv[1:]
      (True, ['--workdir=run', '--config.batch_size=4'])
    """
    out, argv = [], list(argv)
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            arg = "--config=" + str(config_file(arg.partition("=")[2]))
        elif i > 0 and argv[i - 1] == "--config":
            arg = str(config_file(arg))
        out.append(arg)
    return out


def define_flags(flag_values: flags.FlagValues = flags.FLAGS, sys_argv: Sequence[str] | None = None) -> None:
    """Defines the program's flags (``--config``, ``--workdir``, ``--steps`` and the multi-host ones) on ``flag_values``.

    ``sys_argv``: the full command line (program name first) that ``--config.FIELD`` overrides are
    read from (default ``sys.argv``; ``ml_collections`` needs it at definition time).

    Example:
      >>> fv = flags.FlagValues()
      >>> define_flags(fv, ["prog"])
      >>> sorted(fv)
      ['config', 'coordinator_address', 'num_processes', 'process_id', 'steps', 'workdir']
    """
    config_flags.DEFINE_config_file(
        "config", None, "Training recipe: a packaged config's name (e.g. demo, converse_dncnn) or a config file.",
        flag_values=flag_values, lock_config=True, sys_argv=None if sys_argv is None else list(sys_argv),
    )  # fmt: skip
    flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and TensorBoard events.", flag_values=flag_values)
    flags.DEFINE_integer(
        "steps", None, "Train N steps instead of the recipe's num_train_steps; the learning-rate milestones and the "
        "log/eval/checkpoint intervals are scaled with the run.", lower_bound=1, flag_values=flag_values,
    )  # fmt: skip
    flags.DEFINE_string(
        "coordinator_address", None, "host:port of process 0 in a multi-process job.", flag_values=flag_values
    )
    flags.DEFINE_integer("num_processes", None, "Number of processes in a multi-process job.", flag_values=flag_values)
    flags.DEFINE_integer("process_id", None, "This process's index in a multi-process job.", flag_values=flag_values)
    flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)


def _train(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # Imported here so that flag errors are reported without loading JAX and the data stack.
    from converse_jax.train import maybe_initialize_distributed, quiet_orbax_logs, train_and_evaluate
    from converse_jax.train.shorten import shorten
    from converse_jax.utils.paths import RemotePathError, as_path

    FLAGS = flags.FLAGS
    try:  # a gs:// workdir without the gcs extra: one line, before JAX starts or anything is written
        as_path(FLAGS.workdir, "--workdir")
    except RemotePathError as error:
        raise SystemExit(f"{argv[0]}: error: {error}") from None
    if FLAGS.steps is not None:
        shorten(FLAGS.config, FLAGS.steps)
    quiet_orbax_logs()
    maybe_initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    train_and_evaluate(FLAGS.config, FLAGS.workdir)


def error_line(err: BaseException) -> str:
    """A training error as one line, naming ``--config.FIELD`` where the message names a config field.

    Example:
      >>> error_line(ValueError("config.batch_size must be a positive integer, got 0"))
      '--config.batch_size must be a positive integer, got 0'
      >>> error_line(ValueError("data_cfg.train_dir: 'x' is not an existing folder of images"))
      "--config.data.train_dir: 'x' is not an existing folder of images"
      >>> error_line(OSError(28, "No space left on device", "run/checkpoints"))
      'No space left on device: run/checkpoints'
    """
    if isinstance(err, OSError) and err.strerror and err.filename:
        text = f"{err.strerror}: {err.filename}"
    else:
        text = " ".join(str(err).split()) or type(err).__name__
    text = re.sub(r"\bdata_cfg\.", "config.data.", text)
    text = re.sub(r"(?<![\w.-])config\.(?=\w)", "--config.", text)
    from converse_jax.train.faults import TrainingError  # deferred: imports JAX

    if not isinstance(err, (ValueError, OSError, TrainingError)):
        text = f"{type(err).__name__}: {text} (--debug shows the traceback)"
    return text


def _fields(config: Any, prefix: str = "") -> list[str]:
    """Every field of a config, dotted (``data.patch_size``)."""
    out = []
    for key, value in config.items():
        out.append(prefix + key)
        if hasattr(value, "items"):
            out += _fields(value, f"{prefix}{key}.")
    return out


def _load_config(argv: Sequence[str]) -> Any:
    """The config ``--config=FILE[:ARG]`` names (its ``get_config([ARG])``), or None if it cannot be loaded."""
    for arg in argv:
        if arg.startswith("--config="):
            path, _, config_arg = arg.partition("=")[2].partition(":")
            try:
                spec = importlib.util.spec_from_file_location("_converse_jax_config", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module.get_config(*([config_arg] if config_arg else []))
            except Exception:  # noqa: BLE001  the flag parser reports a config file that does not load
                return None
    return None


def _flag_error(err: Exception, argv: Sequence[str]) -> str:
    """A flag-parsing error as one line; an unknown ``--config.FIELD`` gets the closest field (difflib)."""
    config = _load_config(argv) if isinstance(err, (AttributeError, KeyError)) else None
    if config is not None:
        known = set(_fields(config))
        for arg in argv:
            name = arg[2:].partition("=")[0]
            if name.startswith("config.") and name[len("config."):] not in known:
                field = name[len("config."):]
                close = difflib.get_close_matches(field, sorted(known), n=1)
                hint = f"; did you mean --config.{close[0]}?" if close else ""
                return f"--config.{field}: no such config field{hint}"
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def main(argv: Sequence[str] | None = None, prog: str = "converse-jax train") -> None:
    """Runs the program on ``argv`` (default ``sys.argv[1:]``) and exits (``absl.app.run``).

    Exit status 0 when training finished (or stopped on SIGTERM or SIGINT after saving), 1 on an
    error (one line on stderr naming the ``--config.FIELD``, flag or path; ``--debug`` shows the
    traceback instead), 2 for a bad flag or ``--config`` value.

    Example:
      >>> main(["--config=no_such_recipe", "--workdir=run"])  # the message goes to stderr
      Traceback (most recent call last):
      ...
      SystemExit: 2
    """
    if argv is None:  # run as a program: before JAX starts, see converse_jax.utils.host_memory
        keep_freed_memory()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    if {"-h", "--help", "-help", "--helpshort"} & set(argv):
        help_flags = flags.FlagValues()
        define_flags(help_flags, [prog])
        print(f"usage: {prog} --config=NAME_OR_FILE --workdir=DIR [--steps=N] [--debug] [--config.FIELD=VALUE ...]\n\n{__doc__}")
        print(f"Recipes (--config=NAME): {', '.join(config_names())}.")
        print("Config fields (--config.FIELD=VALUE): docs/training.md; converse_jax/configs/default.py (base_config).\n")
        print(help_flags.get_help())
        raise SystemExit(0)
    try:
        argv = [prog, *resolve_config_argv(argv)]
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    define_flags(flags.FLAGS, argv)

    def parse(args: list[str]) -> list[str]:
        try:
            return flags.FLAGS(args)
        except Exception as err:  # absl's flag errors and ml_collections' unknown or mistyped fields
            if debug:
                raise
            print(f"{prog}: error: {_flag_error(err, args[1:])}", file=sys.stderr)
            raise SystemExit(2) from None

    def run(args: list[str]) -> None:
        try:
            _train(args)
        except (app.UsageError, KeyboardInterrupt):
            raise
        except Exception as err:
            if debug:
                raise
            print(f"{prog}: error: {error_line(err)}", file=sys.stderr)
            raise SystemExit(1) from None

    app.run(run, argv=argv, flags_parser=parse)
