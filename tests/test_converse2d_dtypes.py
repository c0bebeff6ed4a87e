"""``converse2d`` at half precision on the golden cases: the operator adds little beyond rounding.

float16 and bfloat16 inputs are solved in float32 and the result is rounded to the input's dtype.
Per golden case (``golden/converse2d_op.npz``) the input, kernel and λ = sigmoid(bias − 9) + eps
are rounded to the half dtype; with ``ref`` the float64 solution *on those rounded values*:

* ``op``    = rms(converse2d(half inputs) − ref) / rms(ref): the operator's own error;
* ``round`` = rms(half(ref) − ref) / rms(ref): rounding the exact result to the dtype, the
  floor no half-precision output can beat;
* ``golden`` = rms(converse2d(half inputs) − official float64 output) / rms(official output):
  the end-to-end error, which adds the effect of rounding the *inputs* (amplified by the
  problem's conditioning, up to ~1/(2√λ) at the frequencies where |F_K|² ≈ λ).

The test checks ``op ≤ 1.25 · round`` on every 32nd case (all four scales, several padding modes) and
that results keep the input's dtype. ``python tests/test_converse2d_dtypes.py [EVERY]`` prints the
summary over every EVERY-th golden case (default 1: all 254; the numbers quoted in
``converse2d``'s docstring and the README).
"""

from __future__ import annotations

import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_op import GOLDEN, case_keys, kernel_hwc, load, nhwc, parse_key
from conftest import shared_path

from converse_jax import converse2d

HALF = {"bfloat16": jnp.bfloat16, "float16": jnp.float16}


_solve = partial(jax.jit, static_argnames=("scale", "padding", "padding_mode"))(converse2d)


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def half_errors(key: str, dtype) -> dict[str, float]:
    """``op``, ``round`` and ``golden`` relative RMS errors (see the module docstring) of one case."""
    d = load(shared_path(GOLDEN))
    case = parse_key(key)
    x = nhwc(d[f"{key}/x"])
    kernel = kernel_hwc(d[f"{key}/weight"])
    lam = 1 / (1 + np.exp(9.0 - d[f"{key}/bias"].reshape(-1).astype(np.float64))) + case.eps
    golden = nhwc(d[f"{key}/out"])
    kwargs = dict(scale=case.scale, padding=case.padding, padding_mode=case.padding_mode)
    half = [jnp.asarray(a, dtype) for a in (x, kernel, lam)]
    out = _solve(*half, **kwargs)
    assert out.dtype == dtype
    with jax.enable_x64(True):
        ref = np.asarray(_solve(*(jnp.asarray(a, jnp.float64) for a in half), **kwargs))
        rounded = np.asarray(jnp.asarray(ref, dtype), np.float64)
    got = np.asarray(out, np.float64)
    return {
        "op": _rms(got - ref) / _rms(ref),
        "round": _rms(rounded - ref) / _rms(ref),
        "golden": _rms(got - golden) / _rms(golden),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HALF))
@pytest.mark.parametrize("key", case_keys()[::32])
def test_half_precision_adds_little_beyond_rounding(key, name):
    err = half_errors(key, HALF[name])
    assert err["op"] <= 1.25 * err["round"], err


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.float16, jnp.bfloat16])
def test_result_keeps_the_input_dtype(dtype):
    with jax.enable_x64(True):
        x, k = jnp.ones((1, 6, 6, 2), dtype), jnp.full((3, 3, 2), 1 / 9, jnp.float32)
        for scale in (1, 2):
            out = jax.eval_shape(lambda x, k: converse2d(x, k, 1e-2, scale=scale, padding=2), x, k)  # noqa: B023  (traced here)
            assert out.dtype == dtype


def summary(every: int = 1) -> str:
    """Median and maximum of the three errors and of op/round over every ``every``-th golden
    case, per dtype."""
    keys = case_keys()[::every]
    lines = [f"{'dtype':9} {'stat':6} {'op':>9} {'round':>9} {'op/round':>9} {'golden':>9}"]
    for name, dtype in HALF.items():
        rows = [half_errors(key, dtype) for key in keys]
        cols = {c: np.array([r[c] for r in rows]) for c in ("op", "round", "golden")}
        ratio = cols["op"] / cols["round"]
        for stat, f in (("median", np.median), ("max", np.max)):
            lines.append(
                f"{name:9} {stat:6} {f(cols['op']):9.2e} {f(cols['round']):9.2e} "
                f"{f(ratio):9.3f} {f(cols['golden']):9.2e}"
            )
    return f"{len(keys)} golden cases (every {every})\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(print(summary(int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
