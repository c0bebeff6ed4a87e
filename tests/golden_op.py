"""Helpers to read and run the official operator's golden cases (``golden/converse2d_op.npz``).

The golden file stores PyTorch layouts (NCHW, depthwise weight ``(1, C, K, K)``, bias
``(1, C, 1, 1)``); these helpers convert them to the project's layouts (NHWC) and run
``converse2d`` on them. The float64 and float32 parity tests live in two files so that pytest-xdist
(``--dist loadfile``) can run them on two workers at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from conftest import SHARED, shared_path

from converse_jax import converse2d

GOLDEN = "golden/converse2d_op.npz"

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


def case_keys(field: str = "case_keys") -> list[str]:
    """The golden keys in ``field`` (``case_keys`` or ``skipped_keys``); a placeholder that makes
    the test skip when the golden file is absent."""
    path = SHARED / GOLDEN
    return [str(k) for k in load(path)[field]] if path.exists() else ["<golden missing>"]


@partial(jax.jit, static_argnames=("scale", "padding", "padding_mode"))
def _forward_and_vjp(x, weight, bias, eps, g, *, scale, padding, padding_mode):
    def f(x, weight, bias):
        lam = jax.nn.sigmoid(bias - 9.0) + eps
        return converse2d(x, weight, lam, scale=scale, padding=padding, padding_mode=padding_mode)

    out, vjp = jax.vjp(f, x, weight, bias)
    return (out, *vjp(g))


def run_case(key: str, dtype) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """(ours, reference, PyTorch float32 errors) of one golden case, computed in ``dtype``.

    Ours and the reference: ``out`` (NHWC) and the vector-Jacobian products of ``sum(out·g)``,
    ``grad_x`` (NHWC), ``grad_weight`` (K, K, C) and ``grad_bias`` (C,), as float64 arrays.
    """
    d = load(shared_path(GOLDEN))
    case = parse_key(key)
    inputs = (
        nhwc(d[f"{key}/x"]),
        kernel_hwc(d[f"{key}/weight"]),
        d[f"{key}/bias"].reshape(-1),
        np.float64(case.eps),
        nhwc(d[f"{key}/g"]),
    )
    args = [jnp.asarray(a, dtype) for a in inputs]
    static = {"scale": case.scale, "padding": case.padding, "padding_mode": case.padding_mode}
    got = _forward_and_vjp(*args, **static)
    names = ("out", "grad_x", "grad_weight", "grad_bias")
    ref = {
        "out": nhwc(d[f"{key}/out"]),
        "grad_x": nhwc(d[f"{key}/grad_x"]),
        "grad_weight": kernel_hwc(d[f"{key}/grad_weight"]),
        "grad_bias": d[f"{key}/grad_bias"].reshape(-1),
    }
    f32err = {n: float(d[f"{key}/f32err_{n}"]) for n in names}
    return dict(zip(names, (np.asarray(a, np.float64) for a in got))), ref, f32err
