"""The paper's test protocol per task: degrade a test set, restore it, score PSNR/SSIM.

:func:`evaluate` reproduces the official ``main_test_*.py`` scripts of the ConverseNet release
(golden README §7, ``shared/paper_notes.md`` §7); every number is computed on uint8 images:

* **denoise** (``converse_dncnn``, ``dncnn``, ...): gray images (``(H, W, 1)``; colour files are
  converted with BT.601 luma). Input ``float32(float64(uint2single(clean)) + N(0, (sigma/255)^2))``
  with the legacy numpy generator re-seeded with 0 for *every* image (all images get the same
  noise field), unclipped. Output ``uint8(round(clip(y, 0, 1) * 255))``. PSNR and SSIM with
  border 0. Default ``sigma`` 25.
* **sr** (``converse_srresnet``, ...): RGB. Ground truth ``modcrop(hr, scale)``; input the
  MATLAB-bicubic (antialiased) ``1/scale`` resize of ``uint2single`` of it, float32, not
  quantised or clipped. PSNR/SSIM with a ``scale``-pixel border on RGB (``psnr``, ``ssim``) and on
  the BT.601 luma of the uint8 images (``psnr_y``, ``ssim_y``; ``rgb2ycbcr`` studio range, rounded
  to uint8). The paper's SR numbers are the Y ones.
* **deblur** (``conversenet``, blind: called without the kernel) and **deblur_nonblind**
  (``converse_usrnet``: called with the float32 kernel and ``sf=1``): RGB. Ground truth
  ``modcrop(img, 8)``; input = SciPy-order circular blur of the uint8 image (truncating uint8
  store), ``uint2single``, then AWGN 2.55/255 (seed 0 per image), unclipped. PSNR with border
  ``sf^2 = 1``. The official script reports only PSNR; SSIM is added here with the same border.

SSIM is the standard toolkit SSIM (11x11 Gaussian window, sigma 1.5, per channel then averaged).
x8 self-ensemble is off in the official scripts (``x8=False``); with ``x8=True`` the non-blind
deblurrer's kernel is flipped/rotated together with the image.

Outputs in ``out_dir``: ``results.csv`` (one row per image, then an ``average`` row),
``summary.json`` (the settings and averages) and, with ``save_images``, one side-by-side PNG per
image in ``out_dir/images`` (degraded input | restored | ground truth, under a caption naming each panel with its PSNR,
:func:`converse_jax.utils.images.captioned_grid`; the SR input is enlarged by pixel repetition to the output size; the degraded input is clipped and rounded for
display). All files are written atomically with the user's umask.

Faults: before the weights are loaded, ``out_dir`` (and ``images/``) is created and proven
writable, and test images whose side-by-side PNGs would collide (``x.png`` and ``x.bmp``) are
refused. An image that cannot be decoded, degraded or restored (too small for the network's
padding or scale) is skipped with one line on stderr; ``results.csv``
then gains a ``skipped`` column and lists it after the ``average`` row with the reason
(``summary.json`` under ``"skipped"``), and :attr:`EvalResult.skipped` names it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from converse_jax.utils.atomic import write_text
from converse_jax.utils.paths import absolute, as_path, makedirs
from converse_jax.inference.batch import BatchReader, Skipped, check_collisions, check_writable_folder
from converse_jax.models.registry import get_spec
from converse_jax.utils.images import captioned_grid, image_files, write_png
from converse_jax.inference.restorer import Restorer, ShapeError, load_kernel
from converse_jax.inference.shard import DeviceBatcher, gather_json, my_share
from converse_jax.tasks import Task, get_task, score_images
from converse_jax.utils.validate import check_int

__all__ = ["EvalResult", "ImageResult", "evaluate"]

_GAP = 4  # px of white between the panels of a side-by-side image


@dataclass(frozen=True)
class ImageResult:
    """Scores of one test image (PSNR in dB on 0..255 uint8 data; SSIM in [-1, 1]).

    ``psnr_y``/``ssim_y`` are the luma scores of RGB super-resolution, else None.

    Example:
      >>> from converse_jax.protocol import calculate_psnr
      >>> truth = np.full((8, 8), 100, np.uint8)
      >>> restored = truth.copy(); restored[0, 0] = 110  # one pixel off by 10: MSE 100/64
      >>> row = ImageResult("a.png", psnr=calculate_psnr(restored, truth, 0), ssim=0.99)
      >>> row.image, round(row.psnr, 2), row.psnr_y
      ('a.png', 46.19, None)
    """

    image: str
    psnr: float
    ssim: float
    psnr_y: float | None = None
    ssim_y: float | None = None


@dataclass(frozen=True)
class EvalResult:
    """Outcome of :func:`evaluate`.

    Attributes:
      model: registry name. task: its task. setting: ``'sigma25'``, ``'x4'`` or the kernel file's
        stem (``'kernel_1'``; ``'_sigma<s>'`` appended for a non-default noise level), with
        ``'_x8'`` appended for the self-ensemble.
      rows: per-image scores in file-name order.
      psnr, ssim, psnr_y, ssim_y: plain means over ``rows`` (``*_y`` only for RGB SR, else None).
      out_dir: where ``results.csv``, ``summary.json`` and ``images/`` were written.
      seconds: wall time of the whole evaluation (loading and compilation included).
      skipped: the :class:`~converse_jax.inference.batch.Skipped` images that could not be decoded (not in
        ``rows`` nor in the averages; NaN averages when no image could be read).

    Example:
      >>> rows = (ImageResult("a.png", 30.0, 0.80), ImageResult("b.png", 32.0, 0.90))
      >>> result = EvalResult("converse_dncnn", "denoise", "sigma25", rows, psnr=31.0, ssim=0.85,
      ...                     psnr_y=None, ssim_y=None, out_dir=Path("results"))
      >>> result.summary()
      'converse_dncnn sigma25: 2 images, PSNR 31.000 dB, SSIM 0.8500'
      >>> result.csv_path.as_posix()
      'results/results.csv'
    """

    model: str
    task: str
    setting: str
    rows: tuple[ImageResult, ...]
    psnr: float
    ssim: float
    psnr_y: float | None
    ssim_y: float | None
    out_dir: Path
    seconds: float = field(default=0.0, compare=False)
    skipped: tuple[Skipped, ...] = ()

    @property
    def csv_path(self) -> Path:
        """``out_dir / 'results.csv'``."""
        return self.out_dir / "results.csv"

    def summary(self) -> str:
        """One line with the averages, e.g. ``converse_dncnn sigma25: 12 images, PSNR 30.699 dB, SSIM 0.8683``."""
        text = f"{self.model} {self.setting}: {len(self.rows)} images, PSNR {self.psnr:.3f} dB, SSIM {self.ssim:.4f}"
        if self.psnr_y is not None:
            text += f"; Y: PSNR {self.psnr_y:.3f} dB, SSIM {self.ssim_y:.4f}"
        if self.skipped:
            text += f" ({len(self.skipped)} unreadable image(s) skipped)"
        return text


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.6f}"


def _csv_text(rows: tuple[ImageResult, ...], with_y: bool, averages: ImageResult | None, skipped: tuple[Skipped, ...]) -> str:
    """The CSV: a header, one row per scored image, the averages; skipped images last (a ``skipped`` column)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["image", "psnr", "ssim"] + (["psnr_y", "ssim_y"] if with_y else [])
    writer.writerow(header + (["skipped"] if skipped else []))
    for r in (*rows, *([averages] if averages is not None else [])):
        values = [_fmt(r.psnr), _fmt(r.ssim)] + ([_fmt(r.psnr_y), _fmt(r.ssim_y)] if with_y else [])
        writer.writerow([r.image, *values] + ([""] if skipped else []))
    for s in skipped:
        writer.writerow([s.path.name] + [""] * (len(header) - 1) + [s.reason])
    return buf.getvalue()


def _panel(task: Task, scale: int, x: np.ndarray, restored: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """degraded input | restored | ground truth, each captioned with its PSNR against the truth as the
    results report it (:meth:`~converse_jax.tasks.Task.caption`: Y PSNR for RGB super-resolution)."""
    shown = task.shown(x, scale)
    labels = [
        f"{task.input_name} {task.caption(shown, truth, scale)}",
        f"restored {task.caption(restored, truth, scale)}",
        "ground truth",
    ]
    return captioned_grid([[shown, restored, truth]], [labels], gap=_GAP)


def _check_options(
    model_name: str, task: Task, spec_scale: int, sigma: float | None, scale: int | None, kernel: object, limit: int | None
) -> tuple[np.ndarray | None, float | None]:
    """Refuse options that do not apply to the task; returns the loaded kernel (or None) and the noise level."""
    if limit is not None:
        check_int(limit, "limit")
    noise = task.check_request(model_name, sigma=sigma, kernel=kernel, scale=scale, model_scale=spec_scale)
    return (None if kernel is None else load_kernel(kernel)), noise


def _test_files(data_dir: object, out_dir: object, limit: int | None, save_images: bool) -> tuple[list[Path], Path]:
    """The test images (file-name order, the first ``limit``) and the output folder, checked writable."""
    if not as_path(data_dir, "data_dir").is_dir():
        raise FileNotFoundError(f"data_dir: {data_dir} is not an existing folder of test images")
    files = image_files(data_dir, "data_dir")
    files = list(files[:limit] if limit is not None else files)
    if save_images:
        check_collisions(((f, as_path(out_dir, "out_dir") / "images" / f"{f.stem}.png") for f in files), what="data_dir")
    out = check_writable_folder(out_dir, "out_dir")
    if save_images:
        check_writable_folder(out / "images", "out_dir")
    return files, out


def evaluate(
    model_name: str,
    weights: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    sigma: float | None = None,
    scale: int | None = None,
    kernel: str | os.PathLike[str] | np.ndarray | None = None,
    x8: bool = False,
    out_dir: str | os.PathLike[str],
    save_images: bool = True,
    limit: int | None = None,
    progress: bool = True,
    dtype: str | None = None,
) -> EvalResult:
    """Evaluate ``model_name`` with ``weights`` on the images of ``data_dir`` by the official protocol.

    Images of one shape are restored in batches over every local device
    (:class:`~converse_jax.inference.shard.DeviceBatcher`); with ``jax.distributed`` each process
    scores its share of the files, the rows are gathered and process 0 alone writes
    ``results.csv`` and ``summary.json`` (every process returns the whole result).

    Args:
      model_name: registry name (its task selects the protocol, see the module docstring).
      weights: official ``.pth`` or variable-store directory of that network.
      data_dir: folder of test images (png/jpg/bmp/tif), evaluated in file-name order.
      sigma: noise level on the 0..255 scale. Denoising: the test noise (default 25).
        Deblurring: the noise added after the blur (default 2.55, the official value).
        Not allowed for SR.
      scale: SR factor; must equal the network's (default: the network's, 4). Not allowed for the
        other tasks (the deblurring protocol uses sf = 1).
      kernel: the 7x7 blur kernel (``.npy`` path or 2-D array); required for deblurring, not
        allowed otherwise.
      x8: x8 self-ensemble (off in the official protocol).
      out_dir: output folder (created if needed).
      save_images: write the side-by-side PNGs to ``out_dir/images``.
      limit: evaluate only the first ``limit`` images.
      progress: tqdm progress bar.
      dtype: computation dtype of the network (e.g. ``"bfloat16"``; None: float32 as stored);
        parameters, inputs and outputs stay float32 (see :mod:`converse_jax.nn.precision`).

    Returns:
      :class:`EvalResult` with per-image and mean scores.

    Example:
      A tiny DnCNN with zero weights returns its noisy input, so it scores the PSNR of the
      sigma-25 noise itself, on one 16x16 gray test image:

      >>> import tempfile
      >>> import jax
      >>> from converse_jax.models import abstract_variables, get_model
      >>> from converse_jax.pretrained import save_variables
      >>> kwargs = {"features": 4, "num_layers": 3}  # a tiny DnCNN: out = x - f(x)
      >>> shapes = abstract_variables(get_model("dncnn", **kwargs))
      >>> zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)  # f = 0: out = x
      >>> tmp = tempfile.TemporaryDirectory()
      >>> root = Path(tmp.name)
      >>> weights = save_variables(root / "weights", zeros, arch="dncnn",
      ...                          metadata={"model_kwargs": kwargs})
      >>> (root / "test").mkdir()
      >>> clean = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
      >>> _ = write_png(root / "test" / "img.png", clean)
      >>> result = evaluate("dncnn", weights, root / "test", out_dir=root / "out", progress=False)
      >>> result.setting, [row.image for row in result.rows], round(result.psnr, 2)
      ('sigma25', ['img.png'], 20.63)
      >>> sorted(p.name for p in (root / "out").iterdir())
      ['images', 'results.csv', 'summary.json']
      >>> tmp.cleanup()
    """
    start = time.perf_counter()
    spec = get_spec(model_name)
    task = get_task(spec.task)
    k, noise = _check_options(model_name, task, spec.scale, sigma, scale, kernel, limit)
    setting = task.setting(spec.scale, noise, kernel, x8)
    files, out = _test_files(data_dir, out_dir, limit, save_images)
    order = {f.name: i for i, f in enumerate(files)}
    files = my_share(files)  # with jax.distributed: this process's share of the test images

    restorer = Restorer(model_name, weights)
    if dtype is not None:
        restorer.module = restorer.module.clone(dtype=dtype)
    makedirs(out / "images" if save_images else out)
    reader = BatchReader(restorer.in_channels, model_name)
    fn = restorer.function(k if task.takes_kernel else None, x8=x8)
    rows: list[ImageResult] = []
    bar = tqdm(files, desc=f"{model_name} {setting}", unit="img", disable=not progress)

    def examples():  # an image the degradation cannot take is skipped by name
        for file in bar:
            img = reader.read(file)
            if img is None:
                continue
            try:
                truth, x = task.degrade(img, scale=restorer.scale, sigma=noise, kernel=k)
            except ValueError as err:  # too small for the degradation's padding, or its scale
                reader.skip(file, f"{img.shape[1]}x{img.shape[0]} image: {err}")
                continue
            yield {"name": file.name, "file": file, "input": x, "truth": truth}

    def finished(pairs):  # a size the network cannot take is skipped by name
        for done, y in reader.outputs(pairs, lambda ex: ex["file"]):
            yield {**done, "output": y}

    def restored():  # the examples with their network outputs, batched over the local devices
        batcher = DeviceBatcher(fn, reported=(ShapeError,))
        for ex in examples():
            yield from finished(batcher.add(ex, ex["input"]))
        yield from finished(batcher.flush())

    for scored in score_images(task, lambda ex: ex["output"], restored(), scale=restorer.scale):
        rows.append(ImageResult(scored.name, **scored.scores))
        bar.set_postfix(psnr=f"{np.mean([r.psnr for r in rows]):.3f}")
        if save_images:
            ex = scored.example
            panel = _panel(task, restorer.scale, ex["input"], scored.restored, ex["truth"])
            write_png(out / "images" / f"{ex['file'].stem}.png", panel)
    with_y = "psnr_y" in task.metric_names(restorer.in_channels)
    rows, skipped = _gathered(rows, tuple(reader.skipped), order)
    result = _result(model_name, task.name, setting, rows, with_y, out, time.perf_counter() - start, skipped)
    settings = {
        "weights": os.fspath(absolute(weights, "weights")),
        "step": restorer.step,
        "data": os.fspath(absolute(data_dir, "data_dir")),
        "sigma": noise,
        "scale": restorer.scale,
        "kernel": str(Path(kernel).absolute()) if isinstance(kernel, (str, os.PathLike)) else (None if k is None else k.tolist()),
        "x8": bool(x8),
        "border": task.border(restorer.scale),
    }
    if jax.process_index() == 0:  # one results.csv and summary.json for all processes
        _write_outputs(result, with_y, settings)
    return result


def _gathered(
    rows: list[ImageResult], skipped: tuple[Skipped, ...], order: dict[str, int]
) -> tuple[list[ImageResult], tuple[Skipped, ...]]:
    """Every process's score rows and skipped images, in file-name order (``order``: name -> index).

    Rows arrive in the order their device batches finished; ``skipped`` in file order.
    """
    if jax.process_count() == 1:
        return sorted(rows, key=lambda r: order[r.image]), skipped
    parts = gather_json({"rows": [dataclasses.asdict(r) for r in rows],
                         "skipped": [[os.fspath(s.path), s.reason] for s in skipped]})
    rows = sorted((ImageResult(**r) for part in parts for r in part["rows"]), key=lambda r: order[r.image])
    skipped = sorted((Skipped(as_path(p), why) for part in parts for p, why in part["skipped"]),
                     key=lambda s: order[s.path.name])
    return rows, tuple(skipped)


def _write_outputs(result: EvalResult, with_y: bool, settings: dict[str, object]) -> None:
    """``results.csv`` and ``summary.json`` (the settings, the averages, the skipped images) in ``result.out_dir``."""
    rows = result.rows
    averages = ImageResult("average", result.psnr, result.ssim, result.psnr_y, result.ssim_y) if rows else None
    write_text(result.out_dir / "results.csv", _csv_text(rows, with_y, averages, result.skipped))
    summary = {
        "model": result.model,
        "task": result.task,
        "weights": settings["weights"],
        "step": settings["step"],
        "data": settings["data"],
        "setting": result.setting,
        **{key: settings[key] for key in ("sigma", "scale", "kernel", "x8", "border")},
        "images": len(rows),
        **{key: getattr(result, key) if rows else None for key in ("psnr", "ssim", "psnr_y", "ssim_y")},
        "skipped": [{"image": s.path.name, "reason": s.reason} for s in result.skipped],
        "seconds": round(result.seconds, 3),
    }
    write_text(result.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


def _result(
    model: str, task: str, setting: str, rows: list[ImageResult], with_y: bool, out: Path, seconds: float,
    skipped: tuple[Skipped, ...],
) -> EvalResult:
    """The :class:`EvalResult` of the scored ``rows``: plain means (NaN without rows; ``*_y`` None unless ``with_y``)."""

    def mean(values: list[float | None]) -> float | None:
        if not values:
            return math.nan
        return None if values[0] is None else float(np.mean(values))

    return EvalResult(
        model=model,
        task=task,
        setting=setting,
        rows=tuple(rows),
        psnr=mean([r.psnr for r in rows]),
        ssim=mean([r.ssim for r in rows]),
        psnr_y=mean([r.psnr_y for r in rows]) if with_y else None,
        ssim_y=mean([r.ssim_y for r in rows]) if with_y else None,
        out_dir=out,
        seconds=seconds,
        skipped=skipped,
    )
