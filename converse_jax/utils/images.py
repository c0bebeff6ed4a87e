"""Side-by-side comparison images with a caption above each panel (e.g. ``restored 30.52 dB``).

:func:`labelled_row` puts uint8 panels of equal height left to right, separated by white
``gap``-pixel columns, under a white strip of :data:`LABEL_HEIGHT` pixels in which each panel's
caption is drawn in black (PIL's built-in font, clipped to the panel's width). The panels'
pixels are copied unchanged, so a panel is recovered exactly as
``row[LABEL_HEIGHT:, x0:x0 + w]`` with ``x0`` the sum of the widths and gaps before it.
Used by ``converse-jax evaluate`` for its ``images/`` and usable by the demo's ``denoise.png``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["LABEL_HEIGHT", "labelled_row"]

LABEL_HEIGHT = 16
"""Height in pixels of the caption strip above the panels."""


def _as_hwc(panel: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(panel)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError(f"panels[{index}]: expected uint8 (H, W), (H, W, 1) or (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr[:, :, None] if arr.ndim == 2 else arr


def labelled_row(panels: Sequence[np.ndarray], labels: Sequence[str], *, gap: int = 4) -> np.ndarray:
    """Panels left to right under their captions, as one uint8 image.

    Args:
      panels: uint8 ``(H, W_i)``, ``(H, W_i, 1)`` or ``(H, W_i, 3)`` images of one height ``H``;
        gray and RGB may be mixed (gray panels are then repeated to RGB).
      labels: one caption per panel (one line; clipped to the panel's width).
      gap: white columns between neighbouring panels.

    Returns:
      uint8 ``(LABEL_HEIGHT + H, sum(W_i) + gap * (n - 1))`` for gray panels, with a trailing
      axis of 3 when any panel is RGB.

    Example:
      >>> a, b = np.zeros((20, 30), np.uint8), np.full((20, 10), 7, np.uint8)
      >>> row = labelled_row([a, b], ["noisy 20.17 dB", "restored"])
      >>> row.shape, bool((row[LABEL_HEIGHT:, 34:] == 7).all())  # panels are copied unchanged
      ((36, 44), True)
      >>> bool((row[:LABEL_HEIGHT, :30] < 128).any())  # some caption text was drawn
      True
    """
    if len(panels) == 0 or len(panels) != len(labels):
        raise ValueError(f"labels: expected one label per panel and at least one panel, got {len(labels)} for {len(panels)}")
    arrays = [_as_hwc(p, i) for i, p in enumerate(panels)]
    height = arrays[0].shape[0]
    if any(a.shape[0] != height for a in arrays):
        raise ValueError(f"panels: expected equal heights, got {[a.shape[0] for a in arrays]}")
    channels = 3 if any(a.shape[2] == 3 for a in arrays) else 1
    arrays = [np.repeat(a, channels // a.shape[2], axis=2) for a in arrays]
    width = sum(a.shape[1] for a in arrays) + gap * (len(arrays) - 1)
    out = np.full((LABEL_HEIGHT + height, width, channels), 255, np.uint8)
    font = ImageFont.load_default()
    x0 = 0
    for array, label in zip(arrays, labels):
        w = array.shape[1]
        out[LABEL_HEIGHT:, x0 : x0 + w] = array
        strip = Image.new("L", (w, LABEL_HEIGHT), 255)
        ImageDraw.Draw(strip).text((2, 2), str(label), fill=0, font=font)
        out[:LABEL_HEIGHT, x0 : x0 + w] = np.asarray(strip)[:, :, None]
        x0 += w + gap
    return out[:, :, 0] if channels == 1 else out
