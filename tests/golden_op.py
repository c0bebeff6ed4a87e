"""Helpers to read the official operator's golden cases (``golden/converse2d_op.npz``) as NHWC.

The golden file stores PyTorch layouts (NCHW, depthwise weight ``(1, C, K, K)``, bias
``(1, C, 1, 1)``); these helpers convert them to the project's layouts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

_KEY = re.compile(
    r"s(?P<s>\d+)_k(?P<k>\d+)_p(?P<p>\d+)_(?P<mode>[a-z]+)_eps(?P<eps>[0-9.e+-]+)"
    r"_B(?P<B>\d+)C(?P<C>\d+)H(?P<H>\d+)W(?P<W>\d+)"
)


@dataclass(frozen=True)
class OpCase:
    """One operator configuration, parsed from a golden key."""

    key: str
    scale: int
    kernel_size: int
    padding: int
    padding_mode: str
    eps: float
    shape: tuple[int, int, int, int]  # (B, H, W, C), NHWC


def parse_key(key: str) -> OpCase:
    m = _KEY.fullmatch(key)
    if m is None:
        raise ValueError(f"not a golden operator key: {key!r}")
    g = m.groupdict()
    shape = (int(g["B"]), int(g["H"]), int(g["W"]), int(g["C"]))
    return OpCase(key, int(g["s"]), int(g["k"]), int(g["p"]), g["mode"], float(g["eps"]), shape)


def nhwc(a: np.ndarray) -> np.ndarray:
    """(B, C, H, W) -> (B, H, W, C)."""
    return np.transpose(a, (0, 2, 3, 1))


def kernel_hwc(weight: np.ndarray) -> np.ndarray:
    """(1, C, K, K) torch depthwise weight -> (K, K, C)."""
    return np.transpose(weight[0], (1, 2, 0))


@lru_cache(maxsize=4)
def load(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an npz file, loaded once per test session."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
