"""Argument validators shared by the library and the tools: integers, noise levels, NHWC arrays.

Each returns the value as a plain Python ``int`` / ``float`` or raises ``ValueError`` whose
message starts with the argument's name (``'tile: expected an int >= 8, got 4'``), so the
command line can replace the name by its flag (:mod:`converse_jax.cli.main`). ``bool`` is refused
where an int is expected; numpy integers and floats are accepted.
"""

from __future__ import annotations

import math
import numbers
import operator

__all__ = ["check_int", "check_level", "check_level_range", "check_nhwc"]


def check_int(value: object, name: str, minimum: int = 1, below: int | None = None) -> int:
    """``value`` as an int, checked to be an integer with ``minimum <= value`` (``< below`` if given).

    >>> check_int(3, "scale"), check_int(0, "seed", minimum=0)
    (3, 0)
    >>> check_int(True, "scale")
    Traceback (most recent call last):
    ...
    ValueError: scale: expected an int >= 1, got True
    >>> check_int(8, "tile_margin", minimum=0, below=8)
    Traceback (most recent call last):
    ...
    ValueError: tile_margin: expected an int >= 0 and < 8, got 8
    """
    expected = f"an int >= {minimum}" + ("" if below is None else f" and < {below}")
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or number < minimum or (below is not None and number >= below):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return int(number)


def check_level(value: object, name: str) -> float:
    """A noise level (0..255 scale) as a float, checked to be a finite real number >= 0.

    >>> check_level(25, "sigma"), check_level(2.55, "noise")
    (25.0, 2.55)
    >>> check_level(float("nan"), "sigma")
    Traceback (most recent call last):
    ...
    ValueError: sigma: expected a finite number >= 0, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def check_level_range(value: object, name: str) -> tuple[float, float]:
    """A range ``(low, high)`` of noise levels (0..255 scale), each checked by :func:`check_level`, low <= high.

    >>> check_level_range([0, 25], "noise_range")
    (0.0, 25.0)
    >>> check_level_range((30, 10), "sigma_range")
    Traceback (most recent call last):
    ...
    ValueError: sigma_range: expected low <= high, got (30, 10)
    """
    try:
        low, high = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a pair (low, high) on the 0..255 scale, got {value!r}") from None
    low, high = check_level(low, name), check_level(high, name)
    if low > high:
        raise ValueError(f"{name}: expected low <= high, got {value!r}")
    return low, high


def check_nhwc(x: object, name: str, channels: int | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is an NHWC array ``(N, H, W, C)`` with every dimension
    >= 1 (and ``C == channels`` when given).

    >>> import numpy as np
    >>> check_nhwc(np.zeros((1, 4, 4, 3)), "x", channels=3)
    >>> check_nhwc(np.zeros((4, 4, 3)), "x")
    Traceback (most recent call last):
    ...
    ValueError: x: expected an NHWC array of shape (N, H, W, C), got shape (4, 4, 3)
    >>> check_nhwc(np.zeros((1, 4, 4, 2)), "ConvBlock", channels=3)
    Traceback (most recent call last):
    ...
    ValueError: ConvBlock: expected an NHWC array of shape (N, H, W, 3), got shape (1, 4, 4, 2)
    """
    shape = getattr(x, "shape", None)
    c = "C" if channels is None else channels
    if getattr(x, "ndim", None) != 4 or (channels is not None and shape[-1] != channels) or min(shape) < 1:
        raise ValueError(f"{name}: expected an NHWC array of shape (N, H, W, {c}), got shape {shape}")
