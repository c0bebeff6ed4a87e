"""The main job on the embedded default: train a small Converse-DnCNN, then denoise a held-out image.

``make demo`` runs ``python -m converse_jax.cli.demo``, which

1. trains the packaged ``demo`` config (``converse_jax/configs/demo.py``: gray denoising at
   sigma 25 on the scikit-image sample photographs shipped in its wheel -- nothing is
   downloaded) in ``demo_out/run`` (removed first, so every
   run starts fresh), validating on the held-out camera, chelsea and coins;
2. denoises the full held-out ``camera`` image at sigma 25 (the official test degradation:
   seed-0 Gaussian noise, unclipped) with the EMA weights;
3. writes ``demo_out/denoise.png`` (noisy | restored | clean, side by side, each panel named
   above it with its PSNR) and
   ``demo_out/val_psnr.png`` (validation PSNR over the training steps);
4. prints one line: ``noisy <dB> dB -> restored <dB> dB (+<gain> dB) on camera``.

The PSNR the demo reaches and the time it takes on this project's machine are recorded in
``docs/benchmarks.md`` ("The demo"); ``tests/test_readme.py`` runs it.

Flags: ``--steps N`` (train N steps, the schedule scaled to match -- e.g. ``--steps 20`` for a
smoke test), ``--workdir``, ``--out_dir``, ``--image`` (one of the held-out images) and
``--config`` (a packaged recipe's name or a config file; default ``demo``; fields overridable as
``--config.FIELD=VALUE``).  Paths are relative to the current directory; the demo runs from an
installed package anywhere (it needs no file of the repository).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from converse_jax.utils.atomic import atomic_open
from converse_jax.utils.host_memory import keep_freed_memory
from converse_jax.utils.images import captioned_grid, write_png

FLAGS = flags.FLAGS


def _define_flags(argv: list[str]) -> None:
    """The demo's absl flags (defined when the demo runs, so that importing it defines nothing)."""
    from converse_jax.configs import config_file

    config_flags.DEFINE_config_file(
        "config", str(config_file("demo")), "Demo training config: a packaged recipe's name or a file.", sys_argv=argv
    )
    flags.DEFINE_string("workdir", "demo_out/run", "Training folder (deleted at the start).")
    flags.DEFINE_string("out_dir", "demo_out", "Folder for denoise.png and val_psnr.png.")
    flags.DEFINE_integer(
        "steps", None, "Train this many steps instead (milestones and intervals scaled: converse_jax.train.shorten).",
        lower_bound=1,
    )
    flags.DEFINE_string("image", "camera", "Held-out embedded image to denoise at the end.")




def plot_psnr(records: list[dict], noisy_psnr: float, path: Path) -> None:
    """Validation PSNR over steps (``metrics.jsonl`` records with ``psnr``) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records if "psnr" in r]
    psnr = [r["psnr"] for r in records if "psnr" in r]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(steps, psnr, "o-", label="restored (EMA weights)")
    ax.axhline(noisy_psnr, color="gray", ls="--", label="noisy input")
    ax.set_xlabel("training step")
    ax.set_ylabel("PSNR (dB), held-out images")
    ax.set_title("Converse-DnCNN, gray denoising, sigma 25")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    from converse_jax.data import EMBEDDED_VALIDATION, create_eval_set, embedded_images
    from converse_jax.models import get_model
    from converse_jax.protocol.degradations import single2uint
    from converse_jax.protocol.metrics import calculate_psnr
    from converse_jax.tasks import get_task
    from converse_jax.train import (
        create_mesh,
        make_predict_fn,
        quiet_orbax_logs,
        read_metrics,
        replicate,
        to_host,
        train_and_evaluate,
    )
    from converse_jax.train.shorten import shorten

    quiet_orbax_logs()

    config = FLAGS.config
    if FLAGS.steps is not None:
        shorten(config, FLAGS.steps)
    if FLAGS.image not in EMBEDDED_VALIDATION:
        raise app.UsageError(f"--image must be a held-out image {EMBEDDED_VALIDATION}, got {FLAGS.image!r}")
    workdir, out_dir = Path(FLAGS.workdir), Path(FLAGS.out_dir)
    shutil.rmtree(workdir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    state = train_and_evaluate(config, workdir)

    # Denoise the full held-out image with the task's official test degradation and border.
    task = get_task("denoise")
    clean = dict(embedded_images("validation", config.data.channels))[FLAGS.image]
    noisy = task.degrade(clean, sigma=config.data.sigma)[1]
    model = get_model(config.model, remat=config.remat, **config.model_overrides.to_dict())
    mesh = create_mesh()
    predict = make_predict_fn(model, task=task.name, mesh=mesh)
    restored = single2uint(to_host(predict(state.variables(ema=True), {"input": replicate(noisy[None], mesh)}))[0])
    border = task.border(1)
    psnr_noisy, psnr_restored = (calculate_psnr(img, clean, border) for img in (single2uint(noisy), restored))
    clean_u8, noisy_u8, restored_u8 = clean[..., 0], single2uint(noisy)[..., 0], restored[..., 0]
    labels = [f"noisy {psnr_noisy:.2f} dB", f"restored {psnr_restored:.2f} dB", "clean"]
    write_png(out_dir / "denoise.png", captioned_grid([[noisy_u8, restored_u8, clean_u8]], [labels], gap=8))

    val_noisy = float(np.mean([
        calculate_psnr(single2uint(ex["input"]), single2uint(ex["target"]), border) for ex in create_eval_set(config.data)
    ]))
    plot_psnr(read_metrics(workdir), val_noisy, out_dir / "val_psnr.png")
    print(
        f"noisy {psnr_noisy:.2f} dB -> restored {psnr_restored:.2f} dB "
        f"({psnr_restored - psnr_noisy:+.2f} dB) on {FLAGS.image}",
        flush=True,
    )


def run(argv: list[str] | None = None) -> None:
    """``python -m converse_jax.cli.demo [FLAGS]``: ``--config`` may name a packaged recipe; exits."""
    from converse_jax.cli.train import resolve_config_argv

    if argv is None:  # run as a program: before JAX starts, see converse_jax.utils.host_memory
        keep_freed_memory()
    argv = list(sys.argv if argv is None else argv)
    try:
        argv = [argv[0], *resolve_config_argv(argv[1:])]
    except ValueError as err:
        print(f"converse_jax.cli.demo: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _define_flags(argv)
    app.run(main, argv=argv)


if __name__ == "__main__":
    run()
