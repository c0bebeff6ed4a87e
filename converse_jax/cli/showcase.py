"""The showcase figure: the four released networks restoring degraded sample photographs.

:func:`make_showcase` (``converse-jax showcase``) loads the four official checkpoints from one
folder, cuts a ``size`` x ``size`` crop of a scikit-image sample photograph for each network (the
pictures shipped in scikit-image's wheel, the same source as the demo, but none of the demo's
held-out images), degrades it with its task's test degradation
(:meth:`converse_jax.tasks.Task.degrade`, with ``crop=False`` so the panels keep ``size`` px),
restores it, and writes one PNG with a row per network:

* **Converse-DnCNN** (``converse_dncnn.pth``): gray crop of ``astronaut`` (the face); AWGN of
  sigma 25 with seed ``seed``, unclipped (:func:`~converse_jax.protocol.denoise_input`).
* **Converse-SRResNet** (``converse_srresnet.pth``): RGB crop of ``astronaut`` (the badges);
  MATLAB bicubic x4 down-scaling (:func:`~converse_jax.protocol.sr_input`), so the input is
  ``size/4`` px.
* **ConverseNet** (``conversenet.pth``, blind): RGB crop of ``coffee``; circular blur of the uint8
  image (:func:`~converse_jax.protocol.circular_blur_uint8`) with a 7x7 kernel drawn by
  :func:`~converse_jax.protocol.random_blur_kernel` from ``numpy.random.default_rng(seed)``, then
  AWGN of sigma 2.55 with seed ``seed`` -- the steps of :func:`~converse_jax.protocol.deblur_input`
  without its crop to a multiple of 8.
* **Converse-USRNet** (``converse_usrnet.pth``, non-blind): RGB crop of ``rocket``; the same kernel
  and noise, and the network is given the kernel.

Each row is ``degraded | restored | clean`` (the SR input enlarged by pixel repetition; the
degraded input clipped and rounded to uint8 for display), each panel under a three-line caption:
network, what the panel shows, PSNR. PSNR is computed as ``converse-jax evaluate`` does: on the
uint8 images (gray for DnCNN, RGB otherwise) with the protocol's borders (0 px for denoising,
4 for x4 SR, 1 for deblurring); the degraded PSNR is that of the panel as shown. The figure is
``3*size + 4*GAP`` px wide and ``4*(size + caption_height(size, 3)) + 5*GAP`` px tall
(:func:`converse_jax.utils.images.captioned_grid`: the caption font scales with ``size``), white
background, written atomically.

Images are NHWC throughout (the networks get ``(1, H, W, C)`` float32 in [0, 1]; the crops are
``(H, W, C)`` uint8, ``C = 1`` for DnCNN, 3 otherwise).

``docs/restorations.png`` was made on CPU with::

    python -m converse_jax showcase --weights ../shared/data/weights --out docs/restorations.png
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from converse_jax.inference.batch import check_writable_folder
from converse_jax.inference.restorer import Restorer
from converse_jax.models.registry import MODELS, ShowcaseRow, get_spec
from converse_jax.protocol import random_blur_kernel, single2uint
from converse_jax.tasks import psnr_text
from converse_jax.utils.images import captioned_grid, to_channels, write_png
from converse_jax.utils.validate import check_int

__all__ = ["CASES", "GAP", "Case", "ShowcaseResult", "make_showcase"]

GAP = 8
"""White space in pixels around and between the panels."""


@dataclass(frozen=True)
class Case(ShowcaseRow):
    """One row of the figure: a network's :class:`~converse_jax.models.ShowcaseRow` (title, sample
    photograph, crop centre, caption) and its registry name ``model`` (the checkpoint is
    ``<model>.pth`` in the weights folder).

    >>> [(case.model, case.image) for case in CASES][:2]
    [('converse_dncnn', 'astronaut'), ('converse_srresnet', 'astronaut')]
    """

    model: str


CASES: tuple[Case, ...] = tuple(
    Case(**vars(spec.showcase), model=spec.name) for spec in MODELS.values() if spec.showcase is not None
)
"""The rows, top to bottom: the networks whose record has a showcase row, in registration order."""


@dataclass(frozen=True)
class ShowcaseResult:
    """PSNR (dB) of one row's degraded panel and of the restoration, against the clean crop, as
    the task's headline reports it (:meth:`~converse_jax.tasks.Task.headline_psnr`): ``on`` is
    ``' (Y)'`` for the luma of RGB super-resolution, ``''`` for the image itself.

    >>> result = ShowcaseResult("converse_usrnet", 27.95, 32.07)
    >>> round(result.restored_psnr - result.degraded_psnr, 2)
    4.12
    """

    model: str
    degraded_psnr: float
    restored_psnr: float
    on: str = ""

    def line(self) -> str:
        """``'<model>: degraded XX.XX dB -> restored YY.YY dB'``, as the command prints it.

        >>> ShowcaseResult("converse_dncnn", 20.174, 29.5).line()
        'converse_dncnn: degraded 20.17 dB -> restored 29.50 dB'
        >>> ShowcaseResult("converse_srresnet", 24.1, 27.333, " (Y)").line()
        'converse_srresnet: degraded 24.10 dB (Y) -> restored 27.33 dB (Y)'
        """
        degraded, restored = psnr_text(self.degraded_psnr, self.on), psnr_text(self.restored_psnr, self.on)
        return f"{self.model}: degraded {degraded} -> restored {restored}"


def _check_args(weights_dir: Path | None, out: Path, size: int, seed: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 4:
        raise ValueError(f"size: expected a positive multiple of 4 that is >= 32, got {size!r}")
    check_int(seed, "seed", minimum=0, below=2**32)
    if out.suffix.lower() != ".png":
        raise ValueError(f"out: the figure is written as PNG; expected a name ending in .png, got {out}")
    if out.is_dir():
        raise ValueError(f"out: {out} is a folder; expected a .png file name")
    if weights_dir is None:
        return
    if not weights_dir.is_dir():
        raise FileNotFoundError(f"weights: folder {weights_dir} does not exist")
    missing = [f"{case.model}.pth" for case in CASES if not (weights_dir / f"{case.model}.pth").is_file()]
    if missing:
        raise FileNotFoundError(f"weights: {weights_dir} lacks the official checkpoint(s) {', '.join(missing)}")
    check_writable_folder(out.parent, "out")  # before four networks run, not after


def _crop(case: Case, channels: int, size: int) -> np.ndarray:
    """The ``size`` x ``size`` uint8 HWC crop of ``case``'s photograph with ``channels`` channels."""
    import skimage.data  # local import: only the showcase and the embedded data source need it

    photo = to_channels(np.asarray(getattr(skimage.data, case.image)()), channels)
    h, w = photo.shape[:2]
    if size > min(h, w):
        raise ValueError(f"size: {size} exceeds the {h}x{w} sample photograph {case.image!r} (at most {min(h, w)})")
    top = min(max(round(case.centre[0] * h) - size // 2, 0), h - size)
    left = min(max(round(case.centre[1] * w) - size // 2, 0), w - size)
    return photo[top : top + size, left : left + size]


def make_showcase(
    weights_dir: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> list[ShowcaseResult]:
    """Restore a degraded crop with each of the four official networks and write the figure.

    Args:
      weights_dir: folder holding ``converse_dncnn.pth``, ``converse_srresnet.pth``,
        ``conversenet.pth`` and ``converse_usrnet.pth`` (the official release); None: the
        official checkpoints by name (downloaded once and cached, see
        :mod:`converse_jax.pretrained.hub`).
      out: the PNG to write (name ending in ``.png``; its folder is created if needed).
      size: side of the clean and restored crops in pixels, a multiple of 4 that is >= 32 (the
        x4 SR input is ``size/4``) and at most 400 (the coffee photograph's height).
      seed: seed of the Gaussian noise (denoising and deblurring) and of the blur kernel.
      progress: tqdm progress bar over the networks.

    Returns:
      One :class:`ShowcaseResult` per network, in :data:`CASES` order.

    Raises:
      ValueError: bad ``size``, ``seed`` or ``out``, or a checkpoint of another network.
      FileNotFoundError: ``weights_dir`` or one of the checkpoints is missing.

    The arguments are checked before anything is loaded:

    >>> make_showcase("weights", "figure.png", size=30)
    Traceback (most recent call last):
    ...
    ValueError: size: expected a positive multiple of 4 that is >= 32, got 30
    """
    weights_dir = None if weights_dir is None else Path(weights_dir).expanduser()
    out = Path(out).expanduser()
    _check_args(weights_dir, out, size, seed)
    crops = [_crop(case, get_spec(case.model).in_channels, size) for case in CASES]
    kernel = random_blur_kernel(np.random.default_rng(seed))
    results: list[ShowcaseResult] = []
    rows: list[list[np.ndarray]] = []
    captions: list[list[str]] = []
    bar = tqdm(list(zip(CASES, crops)), desc="showcase", unit="net", disable=not progress)
    for case, clean in bar:
        bar.set_postfix_str(case.model)
        restorer = Restorer(case.model, case.model if weights_dir is None else weights_dir / f"{case.model}.pth")
        task = restorer.kind
        x = task.degrade(clean, scale=restorer.scale, kernel=kernel if task.blurs else None, seed=seed, crop=False)[1]
        restored = single2uint(np.asarray(restorer(x[None], kernel if task.takes_kernel else None))[0])
        shown = task.shown(x, restorer.scale)
        (degraded_db, on), (restored_db, _) = (task.headline_psnr(p, clean, restorer.scale) for p in (shown, restored))
        results.append(ShowcaseResult(case.model, degraded_db, restored_db, on))
        rows.append([np.repeat(p, 3 // p.shape[2], axis=2) for p in (shown, restored, clean)])
        captions.append([
            f"{case.title}\n{case.degraded}\nPSNR {psnr_text(degraded_db, on)}",
            f"{case.title}\nrestored\nPSNR {psnr_text(restored_db, on)}",
            f"{case.title}\nclean\nreference",
        ])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(out, captioned_grid(rows, captions, gap=GAP, border=GAP))
    return results
