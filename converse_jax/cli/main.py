"""The ``converse-jax`` command line: ``models``, ``convert``, ``evaluate``, ``restore``, ``export``, ``showcase`` and ``train``.

Examples (paths relative to a checkout with ``../shared`` beside it)::

    converse-jax models
    converse-jax convert ../shared/data/weights/converse_dncnn.pth weights/converse_dncnn
    converse-jax evaluate --model converse_dncnn --weights weights/converse_dncnn \\
        --data ../shared/data/testsets/Set12 --sigma 25 --out runs/dncnn_set12
    converse-jax restore --model converse_dncnn --weights ../shared/data/weights/converse_dncnn.pth \\
        --tile 256 noisy.png restored.png
    converse-jax showcase --weights ../shared/data/weights --out docs/restorations.png
    converse-jax export --weights converse_dncnn --out dncnn.jax --shape 481x321
    converse-jax restore --exported dncnn.jax noisy.png restored.png
    converse-jax restore --exported dncnn.jax --info
    converse-jax train --config=converse_dncnn --workdir=runs/dncnn --config.batch_size=32

``--weights`` accepts an official checkpoint's name (``converse_dncnn``: downloaded once,
SHA-256-checked and cached, see :mod:`converse_jax.pretrained.hub`), an official PyTorch ``.pth``
(read without torch and without executing pickled code), a directory written by ``convert``, or a
training workdir (``train.py --workdir``: its best checkpoint's EMA weights); ``--model`` defaults
to the network the weights hold and, when given, must match it. Errors (missing files, weights of another
network, options that do not apply to the model's task) are reported on stderr with exit status
1; usage errors exit with status 2 (argparse). ``train`` is :mod:`converse_jax.cli.train` (absl
flags: ``converse-jax train --help``). ``python -m converse_jax`` runs the same program.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any

from converse_jax.cli.args import build_parser
from converse_jax.utils.host_memory import keep_freed_memory
from converse_jax.utils.paths import absolute, makedirs

__all__ = ["build_parser", "main"]


# Python parameter -> the CLI flag (or positional) a user gave, for error messages.
_FLAGS = {
    "model_name": "--model",
    "weights": "--weights",
    "kernel": "--kernel",
    "sigma": "--sigma",
    "scale": "--scale",
    "limit": "--limit",
    "data_dir": "--data",
    "out_dir": "--out",
    "out": "--out",
    "tile": "--tile",
    "tile_margin": "--tile-margin",
    "shapes": "--shape",
    "shape": "--shape",
    "degrade": "--degrade",
    "overwrite": "--overwrite",
    "arch": "--arch",
    "size": "--size",
    "seed": "--seed",
    "input_path": "INPUT",
    "output_path": "OUTPUT",
    "state_dict": "IN.pth",
}


def _error_line(err: BaseException) -> str:
    """``err`` as one line for the terminal, with Python parameter names replaced by CLI flags.

    ``tile_margin: ...`` -> ``--tile-margin: ...``; ``(pass overwrite=True)`` -> ``(pass
    --overwrite)``; an ``OSError`` with a file name -> ``CAUSE: PATH``; an unexpected exception
    type is named (``--debug`` shows its traceback).
    """
    if isinstance(err, OSError) and err.strerror and err.filename:
        text = f"{err.strerror}: {err.filename}" + (f" -> {err.filename2}" if err.filename2 else "")
    else:
        text = str(err) or type(err).__name__
    text = " ".join(text.split())
    text = re.sub(r"\b(\w+)=True\b( \(--[\w-]+\))?", lambda m: _FLAGS.get(m[1], m[0]), text)
    text = re.sub(r"\bpass (\w+) explicitly\b", lambda m: f"pass {_FLAGS.get(m[1], m[1])}", text)
    head, sep, rest = text.partition(": ")
    if sep and head == "path":  # the message names the path itself
        text = rest
    elif sep and head in _FLAGS:
        text = f"{_FLAGS[head]}: {rest}"
    text = re.sub(r"^from_torch\(arch='(\w+)'\)", r"--arch \1", text)
    if not isinstance(err, (ValueError, OSError)):
        text = f"{type(err).__name__}: {text} (--debug shows the traceback)"
    return text


def _cmd_models(args: argparse.Namespace) -> int:
    from converse_jax.models.registry import MODELS

    header = ("name", "task", "scale", "channels", "params", "paper params", "released weights")
    rows = [
        (
            s.name,
            s.task,
            f"x{s.scale}",
            str(s.in_channels),
            "-" if s.param_count is None else f"{s.param_count:,}",
            "-" if s.paper_param_count is None else f"{s.paper_param_count:,}",
            "-" if s.pretrained is None else s.pretrained.file,
        )
        for s in sorted(MODELS.values(), key=lambda s: (s.task, s.name))
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from converse_jax.models.registry import count_params
    from converse_jax.pretrained import from_torch, infer_arch, read_pth, save_variables
    from converse_jax.pretrained.pth import check_finite
    from converse_jax.pretrained.load import pth_file

    source = pth_file(args.input, "IN")
    state_dict = read_pth(source)
    check_finite(state_dict, source)
    arch = args.arch if args.arch is not None else infer_arch(state_dict)
    try:
        variables = from_torch(state_dict, arch)
    except ValueError as err:
        if args.arch is None:
            raise
        try:
            held = infer_arch(state_dict)
        except ValueError:
            raise err from None
        raise ValueError(f"--arch {arch}: {source} holds a {held!r} network, not {arch!r}") from err
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    makedirs(absolute(args.output, "OUTPUT").parent)
    out = save_variables(
        args.output,
        variables,
        arch=arch,
        metadata={"source": source.name, "source_sha256": digest, "converted_by": "converse-jax convert"},
        overwrite=args.overwrite,
    )
    print(f"{arch}: {count_params(variables.get('params', variables)):,} parameters -> {out}")
    return 0


def _model_name(args: argparse.Namespace) -> str:
    """``--model``, or the network the ``--weights`` hold (official name, run config, store, .pth keys).

    A training run's network is always read (cheap: its ``config.json``), which imports the module
    that registered it; a mismatching ``--model`` is refused later, naming both."""
    from converse_jax.pretrained.load import weights_arch
    from converse_jax.pretrained.runs import is_run

    if args.model is None or is_run(args.weights):
        held = weights_arch(args.weights)
        return held if args.model is None else args.model
    return args.model


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from converse_jax.inference.evaluate import evaluate
    from converse_jax.train.mesh import maybe_initialize_distributed

    maybe_initialize_distributed()  # a pod's hosts (or JAX_COORDINATOR_ADDRESS ...): each scores its share

    result = evaluate(
        _model_name(args),
        args.weights,
        args.data,
        sigma=args.sigma,
        scale=args.scale,
        kernel=args.kernel,
        x8=args.x8,
        out_dir=args.out,
        save_images=not args.no_images,
        limit=args.limit,
        progress=not args.quiet,
    )
    width = max((len(r.image) for r in result.rows), default=0)
    for r in result.rows:
        line = f"{r.image.ljust(width)}  PSNR {r.psnr:7.3f} dB  SSIM {r.ssim:.4f}"
        if r.psnr_y is not None:
            line += f"  |  Y: PSNR {r.psnr_y:7.3f} dB  SSIM {r.ssim_y:.4f}"
        print(line)
    print(result.summary())
    print(f"results: {result.csv_path}")
    return _skipped_status(args.command, result.skipped, len(result.rows) + len(result.skipped))


def _restore_exported(args: argparse.Namespace) -> Any:
    """``restore --exported FILE``: runs the artifact with jax alone (no Flax, no model code)."""
    from converse_jax.inference.export import load_exported, restore_exported

    options = {"--weights": args.weights, "--model": args.model, "--x8": args.x8 or None, "--tile": args.tile,
               "--tile-margin": args.tile_margin}
    given = [flag for flag, value in options.items() if value is not None]
    if given:
        raise ValueError(f"exported: {', '.join(given)} cannot be combined with --exported (the artifact fixes the "
                         "network, its tile and margin)")
    artifact = load_exported(args.exported)
    if args.info:
        print(artifact.info())
        return None
    return restore_exported(artifact, args.input, args.output, degrade=args.degrade, sigma=args.sigma,
                            kernel=args.kernel, progress=not args.quiet, resume=args.resume)


def _cmd_restore(args: argparse.Namespace) -> int:
    if args.info and args.exported is None:
        raise ValueError("--info: needs --exported FILE")
    if not args.info and args.output is None:
        raise ValueError("output_path: restore needs INPUT and OUTPUT")
    if args.exported is not None:
        result = _restore_exported(args)
        if result is None:
            return 0
    else:
        from converse_jax.inference.restore import restore_path
        from converse_jax.train.mesh import maybe_initialize_distributed

        maybe_initialize_distributed()  # a pod's hosts (or JAX_COORDINATOR_ADDRESS ...): each restores its share
        if args.weights is None:
            raise ValueError("weights: restore needs --weights (or --exported FILE)")
        if args.tile is None and args.tile_margin is not None:
            raise ValueError("--tile-margin: needs --tile")
        result = restore_path(
            _model_name(args),
            args.weights,
            args.input,
            args.output,
            degrade=args.degrade,
            sigma=args.sigma,
            kernel=args.kernel,
            x8=args.x8,
            tile=args.tile,
            tile_margin=args.tile_margin,
            progress=not args.quiet,
            resume=args.resume,
        )
    for path in result.written:
        print(path)
    return _skipped_status(args.command, result.skipped, len(result.written) + len(result.skipped))


def _skipped_status(command: str, skipped: Sequence[Any], total: int) -> int:
    """Exit status of a batch: 0, or 1 with one closing line when images were skipped."""
    if not skipped:
        return 0
    names = ", ".join(str(s.path) for s in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    rest = "the others were done" if len(skipped) < total else "nothing else to do"
    print(f"converse-jax {command}: error: {len(skipped)} of {total} images could not be read "
          f"and were skipped ({names}); {rest}", file=sys.stderr)
    return 1


def _cmd_export(args: argparse.Namespace) -> int:
    from converse_jax.inference.export import export_restorer, load_exported, parse_shape

    out = export_restorer(args.weights, args.out, tile=args.tile, tile_margin=args.tile_margin,
                          shapes=[parse_shape(s) for s in args.shape], kernel_size=args.kernel_size, model=args.model)
    print(f"{out}:")
    print(load_exported(out).info())
    return 0


def _cmd_showcase(args: argparse.Namespace) -> int:
    from converse_jax.cli.showcase import make_showcase

    results = make_showcase(args.weights, args.out, size=args.size, seed=args.seed, progress=not args.quiet)
    for r in results:
        print(r.line())
    print(f"figure: {args.out}")
    return 0



_COMMANDS = {
    "models": _cmd_models,
    "convert": _cmd_convert,
    "evaluate": _cmd_evaluate,
    "restore": _cmd_restore,
    "export": _cmd_export,
    "showcase": _cmd_showcase,
}
"""Sub-command name -> the function that runs its parsed arguments (exit status)."""


class _StderrHandler(logging.Handler):
    """Writes records to whatever ``sys.stderr`` is when they are emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def _show_weights_log(command: str) -> None:
    """Shows on stderr which checkpoint of a run was loaded, and a damaged one passed over (one line each)."""
    logger = logging.getLogger("converse_jax.pretrained.runs")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(f"converse-jax {command}: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``converse-jax`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 on success, 1 for a reported error (one line ``converse-jax <command>: error: ...`` on
    stderr, naming the path or CLI flag and the cause; ``--debug`` re-raises the exception so its
    traceback shows) or when a batch skipped unreadable images, 2 for a usage error (argparse
    exits via ``SystemExit(2)``), 130 when interrupted (Ctrl-C).

    Example:
      >>> import contextlib, io
      >>> with contextlib.redirect_stdout(io.StringIO()) as out:
      ...     status = main(["models"])
      >>> status, "converse_dncnn" in out.getvalue()
      (0, True)
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     status = main(["convert", "no_such_file.pth", "out"])
      >>> status, "no_such_file.pth" in err.getvalue()
      (1, True)
    """
    if argv is None:  # run as a program: before JAX starts, see converse_jax.utils.host_memory
        keep_freed_memory()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "train" in argv[:2] and argv[: argv.index("train")] in ([], ["--debug"]):  # absl flags: its own parser
        from converse_jax.cli.train import main as train_main

        train_main(argv[: argv.index("train")] + argv[argv.index("train") + 1 :])
    args = build_parser().parse_args(argv)
    _show_weights_log(args.command)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"converse-jax {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"converse-jax {args.command}: error: {_error_line(err)}", file=sys.stderr)
        return 1
