"""The argument grammar of ``converse-jax``: :func:`build_parser` (what :mod:`converse_jax.cli.main` runs).

One ``_add_*_parser`` function per sub-command; each parsed namespace carries ``command`` (the
sub-command's name), which :func:`converse_jax.cli.main.main` maps to the function that runs it.
Integer options are checked by argparse here (usage errors, exit status 2); the library checks
everything else and the command line reports it (exit status 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from converse_jax.utils.validate import check_int

__all__ = ["build_parser"]

WEIGHTS_HELP = (
    "official checkpoint name (downloaded and cached), official .pth, a folder written by `convert`, "
    "or a training workdir (its best checkpoint)"
)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: the text as an int >= ``minimum`` (:func:`~converse_jax.utils.validate.check_int`)."""

    def parse(text: str) -> int:
        try:
            return check_int(int(text), "value", minimum=minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text}") from None

    return parse


def _model_args(p: argparse.ArgumentParser, weights_required: bool = True) -> None:
    """The options every network-running command shares: --model, --weights, --kernel, --x8, --quiet."""
    p.add_argument("--model", help="registry name (default: the network the weights hold; must match them)")
    p.add_argument("--weights", required=weights_required, help=WEIGHTS_HELP)
    p.add_argument("--kernel", metavar="K.npy", help="7x7 blur kernel (.npy) for the deblurring models")
    p.add_argument("--x8", action="store_true", help="x8 self-ensemble (flips and rotations)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_convert_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert an official .pth into this project's variable store")
    p.add_argument("input", metavar="IN", help="official PyTorch checkpoint: a .pth file, or an official name (downloaded and cached)")
    p.add_argument("output", metavar="OUT", help="directory to write (created, with its parents, if needed)")
    p.add_argument("--arch", help="registry name (default: inferred from the checkpoint's keys)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing variable store at OUT")


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model on a test set by the official protocol")
    _model_args(p)
    p.add_argument("--data", required=True, metavar="DIR", help="folder of test images (e.g. Set12, CSet5)")
    p.add_argument(
        "--sigma", type=float, help="noise level on 0..255: denoising (default 25) or after the blur (default 2.55)"
    )
    p.add_argument("--scale", type=_int_at_least(1), help="SR factor (must be the model's; default: the model's)")
    p.add_argument("--limit", type=_int_at_least(1), metavar="N", help="only the first N images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (results.csv, summary.json, images/)")
    p.add_argument("--no-images", action="store_true", help="do not write the side-by-side PNGs")


def _add_restore_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="restore an image or a folder of images")
    _model_args(p, weights_required=False)
    p.add_argument(
        "--exported", metavar="FILE", help="run an artifact written by `export` instead (jax only; no --weights)"
    )
    p.add_argument("--info", action="store_true", help="with --exported: print what the artifact holds and exit")
    p.add_argument(
        "--degrade",
        action="store_true",
        help="treat INPUT as clean and synthesise the test degradation first (demo); "
        "also writes <name>_degraded.png",
    )
    p.add_argument("--sigma", type=float, help="noise level on 0..255 for --degrade (default 25, deblurring 2.55)")
    p.add_argument(
        "--tile",
        type=_int_at_least(1),
        metavar="SIZE",
        help="restore in SIZE x SIZE windows (default: whole images, tiled automatically when they would not fit "
        "in memory)",
    )
    p.add_argument(
        "--tile-margin",
        type=_int_at_least(0),
        metavar="N",
        help="context around each window's kept middle, below SIZE/2 (default: the network's)",
    )
    p.add_argument(
        "--resume", action="store_true", help="leave out the images whose output already exists (a run started again)"
    )
    p.add_argument("input", metavar="INPUT", nargs="?", help="image file or folder of images")
    p.add_argument("output", metavar="OUTPUT", nargs="?", help="output .png (or folder) for a file; folder for a folder")


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a network's restore function as a jax.export artifact (StableHLO)")
    p.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    p.add_argument("--model", help="registry name the weights must hold (default: whatever they hold)")
    p.add_argument("--out", required=True, metavar="FILE", help="the artifact to write (its folder must exist)")
    p.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="HxW",
        help="an input image shape to export whole (restored exactly; repeatable)",
    )
    p.add_argument(
        "--tile",
        type=_int_at_least(1),
        metavar="SIZE",
        help="window side for images of other shapes (>= 8; default: the library's, printed after the export)",
    )
    p.add_argument(
        "--tile-margin", type=_int_at_least(0), metavar="N", help="context around each window's kept middle (default: the network's)"
    )
    p.add_argument(
        "--kernel-size", type=_int_at_least(1), default=7, metavar="K", help="blur kernel side for non-blind deblurring (7)"
    )


def _add_showcase_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "showcase", help="figure of the four official networks restoring degraded sample photographs (PNG)"
    )
    p.add_argument(
        "--weights",
        metavar="DIR",
        help="folder with the four official .pth checkpoints (default: the official ones by name, downloaded and cached)",
    )
    p.add_argument("--out", required=True, metavar="PATH.png", help="the figure to write")
    p.add_argument(
        "--size",
        type=int,
        default=256,
        metavar="N",
        help="side of the restored crops: a multiple of 4, >= 32 (the x4 SR input is N/4; default 256)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the noise and the blur kernel (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``converse-jax`` (sub-commands models, convert, evaluate, restore, export, showcase, train).

    ``train`` is listed here for ``--help``; :func:`converse_jax.cli.main.main` hands its arguments to
    :func:`converse_jax.cli.train.main`.

    Example:
      >>> args = build_parser().parse_args(["convert", "in.pth", "out_dir", "--arch", "conversenet"])
      >>> (args.command, args.input, args.output, args.arch)
      ('convert', 'in.pth', 'out_dir', 'conversenet')
    """
    parser = argparse.ArgumentParser(
        prog="converse-jax",
        description="ConverseNet (Reverse Convolution) models in JAX: list, convert official weights, "
        "evaluate by the paper's protocol, restore images, draw the showcase figure.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("models", help="list the model zoo (task, scale, parameter counts)")
    for add in (_add_convert_parser, _add_evaluate_parser, _add_restore_parser, _add_export_parser, _add_showcase_parser):
        add(sub)
    for p in sub.choices.values():  # `converse-jax COMMAND ... --debug` works as well
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an error")
    sub.add_parser(
        "train",
        add_help=False,
        help="train a network from a packaged recipe (demo, converse_dncnn, ...) or a config file "
        "(see `converse-jax train --help`)",
    )
    return parser
