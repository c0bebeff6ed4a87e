"""Parity of ``converse2d`` with the official PyTorch operator on every golden case.

Each stored case gives the forward output and the vector-Jacobian products of ``sum(out·g)``
with respect to the input, the kernel and the bias (λ = sigmoid(bias − 9) + eps).

Tolerances (``shared/golden/README.md`` section 5):

* float64: ``max|impl − ref| ≤ 1e-8·max|ref|`` for out, grad_x and grad_weight. ``grad_bias`` is
  a small number made of large cancelling sums; the float64 reference itself carries a relative
  error of up to ~1e-7 there (our literal Algorithm-1 transcription differs from it by as much),
  so it is held to 1e-8 of the case's largest reference value over all four arrays.
* float32: every array within 10× the case's stored PyTorch-float32 error (``f32err_*``) plus
  1e-6·max|ref|; ``grad_bias`` with the README's absolute tolerance (0.1 for eps 1e-5, 3e-3 for
  eps 1e-3).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import SHARED, shared_path
from converse_jax import converse2d
from golden_op import kernel_hwc, load, nhwc, parse_key

GOLDEN = "golden/converse2d_op.npz"


def _case_keys() -> list[str]:
    path = SHARED / GOLDEN
    return [str(k) for k in load(path)["case_keys"]] if path.exists() else ["<golden missing>"]


def _skipped_keys() -> list[str]:
    path = SHARED / GOLDEN
    return [str(k) for k in load(path)["skipped_keys"]] if path.exists() else ["<golden missing>"]


@partial(jax.jit, static_argnames=("scale", "padding", "padding_mode"))
def _forward_and_vjp(x, weight, bias, eps, g, *, scale, padding, padding_mode):
    def f(x, weight, bias):
        lam = jax.nn.sigmoid(bias - 9.0) + eps
        return converse2d(x, weight, lam, scale=scale, padding=padding, padding_mode=padding_mode)

    out, vjp = jax.vjp(f, x, weight, bias)
    return (out, *vjp(g))


def _run(key: str, dtype) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    d = load(shared_path(GOLDEN))
    case = parse_key(key)
    inputs = (
        nhwc(d[f"{key}/x"]),
        kernel_hwc(d[f"{key}/weight"]),
        d[f"{key}/bias"].reshape(-1),
        np.float64(case.eps),
        nhwc(d[f"{key}/g"]),
    )
    got = _forward_and_vjp(
        *(jnp.asarray(a, dtype) for a in inputs),
        scale=case.scale,
        padding=case.padding,
        padding_mode=case.padding_mode,
    )
    names = ("out", "grad_x", "grad_weight", "grad_bias")
    ref = {
        "out": nhwc(d[f"{key}/out"]),
        "grad_x": nhwc(d[f"{key}/grad_x"]),
        "grad_weight": kernel_hwc(d[f"{key}/grad_weight"]),
        "grad_bias": d[f"{key}/grad_bias"].reshape(-1),
    }
    f32err = {n: float(d[f"{key}/f32err_{n}"]) for n in names}
    return dict(zip(names, (np.asarray(a, np.float64) for a in got))), ref, f32err


@pytest.mark.parametrize("key", _case_keys())
def test_float64_matches_official(key):
    with jax.enable_x64(True):
        got, ref, _ = _run(key, jnp.float64)
    case_max = max(np.abs(r).max() for r in ref.values())
    for name in ("out", "grad_x", "grad_weight"):
        assert got[name].shape == ref[name].shape, name
        err = np.abs(got[name] - ref[name]).max()
        assert err <= 1e-8 * np.abs(ref[name]).max(), (name, err)
    err = np.abs(got["grad_bias"] - ref["grad_bias"]).max()
    assert err <= 1e-8 * case_max, ("grad_bias", err)


@pytest.mark.parametrize("key", _case_keys())
def test_float32_within_pytorch_float32_error(key):
    with jax.enable_x64(True):  # the float32 computation itself; x64 only admits float64 refs
        got, ref, f32err = _run(key, jnp.float32)
    for name in ("out", "grad_x", "grad_weight"):
        err = np.abs(got[name] - ref[name]).max()
        bound = 10 * f32err[name] + 1e-6 * np.abs(ref[name]).max()
        assert err <= bound, (name, err, bound)
    bias_tol = 0.1 if parse_key(key).eps < 1e-4 else 3e-3
    assert np.abs(got["grad_bias"] - ref["grad_bias"]).max() <= bias_tol


@pytest.mark.parametrize("key", _skipped_keys())
def test_cases_the_official_code_rejects_raise_value_error(key):
    shared_path(GOLDEN)
    case = parse_key(key)
    b, h, w, c = case.shape
    x = jnp.zeros((b, h, w, c))
    kernel = jnp.full((case.kernel_size, case.kernel_size, c), 1.0 / case.kernel_size**2)
    with pytest.raises(ValueError, match="padding|kernel"):
        converse2d(
            x, kernel, 1e-3, scale=case.scale, padding=case.padding, padding_mode=case.padding_mode
        )


def test_golden_grid_is_complete():
    d = load(shared_path(GOLDEN))
    assert len(d["case_keys"]) == 254
    assert len(d["skipped_keys"]) == 8
    assert {str(m) for m in d["case_padding_mode"]} == {"circular", "reflect", "replicate", "constant"}
    assert set(d["case_scale"].tolist()) == {1, 2, 3, 4}
