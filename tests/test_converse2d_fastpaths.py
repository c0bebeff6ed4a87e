"""Every fast path of ``converse2d`` against the literal Algorithm 1 (``converse2d_reference``).

Paths: scale 1 with the default prior (the filter ``irfft2(rfft2(y)·M)``), scale > 1 with the
default prior (coarse-grid solve + phase-by-phase assembly of the kernel correlation), and the
explicit prior. Inputs are random; the grid covers scales 1–4, every padding mode, shared and
per-sample kernels (odd, even and non-square), scalar / per-channel / per-sample λ, odd and even
sizes, the vector-Jacobian products w.r.t. the input, the kernel, λ and the prior, and the
Jacobian-vector products (forward mode).
Tolerances: float64 ``1e-9·max|ref|``. float32: the fast path on float32 inputs against
Algorithm 1 in float64 on the same (float32-rounded) inputs, within ``1e-4·max|ref|`` — the
float32 Algorithm 1 itself misses by up to ~1e-2 on the λ gradient (its full-grid complex FFTs
amplify rounding by ~1/λ), the fast path by < 1e-5.
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from converse_jax import converse2d, converse2d_reference
from converse_jax.ops.converse2d import IMPLEMENTATIONS, use_implementation

# (scale, padding, mode, (N, H, W, C), kernel shape without C, per-sample kernel, λ kind)
CASES = [
    (1, 0, "circular", (2, 7, 6, 3), (3, 3), False, "scalar"),
    (1, 3, "circular", (1, 8, 9, 2), (7, 7), False, "channel"),
    (1, 2, "reflect", (2, 6, 7, 3), (5, 5), True, "sample"),
    (1, 2, "replicate", (2, 5, 6, 2), (4, 3), False, "channel"),
    (1, 1, "constant", (3, 6, 5, 2), (2, 2), True, "scalar"),
    (2, 2, "replicate", (2, 6, 5, 3), (2, 2), False, "channel"),
    (2, 0, "circular", (2, 5, 6, 2), (7, 7), True, "sample"),
    (2, 1, "reflect", (1, 7, 6, 2), (4, 5), False, "scalar"),
    (3, 1, "constant", (2, 5, 4, 2), (5, 5), True, "channel"),
    (3, 2, "circular", (1, 4, 5, 3), (3, 2), False, "sample"),
    (4, 1, "replicate", (2, 3, 4, 2), (7, 7), False, "channel"),
    (4, 0, "circular", (1, 4, 3, 2), (9, 6), True, "scalar"),
]


def _inputs(case, seed: int, dtype, prior: bool):
    scale, _, _, (n, h, w, c), (kh, kw), per_sample, lam_kind = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    kshape = (n, kh, kw, c) if per_sample else (kh, kw, c)
    k = rng.random(kshape) + 0.3 * rng.standard_normal(kshape)
    lam = {
        "scalar": np.float64(0.02),
        "channel": rng.uniform(1e-3, 1e-1, (c,)),
        "sample": rng.uniform(1e-3, 1e-1, (n, c)),
    }[lam_kind]
    x0 = rng.standard_normal((n, h * scale, w * scale, c)) if prior else None
    cast = lambda a: None if a is None else jnp.asarray(a, dtype)
    return cast(x), cast(k), cast(lam), cast(x0)


def _fwd_vjp(fn, case, x, k, lam, x0, g):
    scale, padding, mode = case[:3]

    def f(x, k, lam, *x0):
        return fn(x, k, lam, scale=scale, padding=padding, padding_mode=mode, x0=x0[0] if x0 else None)

    args = (x, k, lam) + ((x0,) if x0 is not None else ())
    out, vjp = jax.vjp(f, *args)
    return (out, *vjp(g))


def _compare(case, dtype, prior: bool, rtol: float):
    """Fast path in ``dtype`` vs Algorithm 1 in float64 on the same inputs (x64 enabled)."""
    x, k, lam, x0 = _inputs(case, 7, dtype, prior)
    scale = case[0]
    n, h, w, c = case[3]
    g = jnp.asarray(np.random.default_rng(8).standard_normal((n, h * scale, w * scale, c)), dtype)
    args = (x, k, lam, x0, g)
    fast = jax.jit(lambda *a: _fwd_vjp(converse2d, case, *a))(*args)
    wide = [None if a is None else a.astype(jnp.float64) for a in args]
    ref = jax.jit(lambda *a: _fwd_vjp(converse2d_reference, case, *a))(*wide)
    names = ["out", "grad_x", "grad_kernel", "grad_lam"] + (["grad_x0"] if prior else [])
    for name, a, b in zip(names, fast, ref, strict=True):
        assert a.shape == b.shape and a.dtype == dtype, name
        a, b = np.asarray(a, np.float64), np.asarray(b)
        assert np.abs(a - b).max() <= rtol * np.abs(b).max(), (name, np.abs(a - b).max(), np.abs(b).max())


@pytest.mark.parametrize("prior", [False, True], ids=["default_prior", "explicit_prior"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"s{c[0]}_p{c[1]}_{c[2]}_{c[3]}_k{c[4]}_{c[6]}")
def test_float64_forward_and_gradients_match_algorithm_1(case, prior):
    with jax.enable_x64(True):
        _compare(case, jnp.float64, prior, 1e-9)


@pytest.mark.parametrize("case", CASES[1::2], ids=lambda c: f"s{c[0]}_p{c[1]}_{c[2]}_{c[3]}_k{c[4]}_{c[6]}")
def test_float32_forward_and_gradients_match_algorithm_1_in_float64(case):
    with jax.enable_x64(True):
        _compare(case, jnp.float32, False, 1e-4)


@pytest.mark.parametrize("case", CASES[1:5], ids=lambda c: f"s{c[0]}_p{c[1]}_{c[2]}")
def test_forward_mode_derivatives_match_algorithm_1(case):
    """``jax.jvp`` through the fast path (its custom JVPs: the gather padding, the kernel DFT)
    equals the reference's in float64, for a tangent in every argument, every padding mode."""
    scale, padding, mode = case[:3]
    with jax.enable_x64(True):
        primals = _inputs(case, 3, jnp.float64, False)[:3]
        tangents = _inputs(case, 4, jnp.float64, False)[:3]

        def jvp(fn):
            f = lambda x, k, lam: fn(x, k, lam, scale=scale, padding=padding, padding_mode=mode)
            return jax.jvp(f, primals, tangents)

        (out, dout), (ref, dref) = jvp(converse2d), jvp(converse2d_reference)
        assert np.abs(out - ref).max() <= 1e-9 * np.abs(ref).max()
        assert np.abs(dout - dref).max() <= 1e-9 * np.abs(dref).max()


def test_float32_output_dtype_on_every_path():
    x = jnp.ones((1, 4, 4, 2), jnp.float32)
    k = jnp.full((3, 3, 2), 1 / 9, jnp.float32)
    for scale, x0 in ((1, None), (2, None), (2, jnp.ones((1, 8, 8, 2), jnp.float32))):
        assert converse2d(x, k, 1e-2, scale=scale, padding=1, x0=x0).dtype == jnp.float32


def _fft_types(fn, *args) -> set[str]:
    """Names of the FFT types (FFT, IFFT, RFFT, IRFFT) in the traced program of ``fn(*args)``."""
    found = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "fft":
                found.add(jax.lax.FftType(eqn.params["fft_type"]).name)
            for param in eqn.params.values():
                inner = getattr(param, "jaxpr", param)
                if hasattr(inner, "eqns"):
                    walk(inner)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


def test_use_implementation_switches_to_the_reference_and_back():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 6, 6, 2)), jnp.float32)
    k = jnp.full((3, 3, 2), 1 / 9, jnp.float32)

    def make():  # a fresh function each time: the choice is read when tracing, traces are cached
        return lambda x: converse2d(x, k, 1e-2, scale=2, padding=1)

    with use_implementation("reference"):
        assert _fft_types(make(), x) == {"FFT", "IFFT"}  # Algorithm 1: complex FFTs
        ref = jax.jit(make())(x)
    assert _fft_types(make(), x) == {"RFFT", "IRFFT"}  # back to the fast path after the block
    np.testing.assert_allclose(np.asarray(ref), np.asarray(jax.jit(make())(x)), atol=1e-4)


def test_use_implementation_is_local_to_the_thread():
    x = jnp.ones((1, 4, 4, 1))
    k = jnp.ones((2, 2, 1)) / 4
    seen = {}

    def other():
        seen["types"] = _fft_types(lambda x: converse2d(x, k, 1e-2, scale=2), x)

    with use_implementation("reference"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen["types"] == {"RFFT", "IRFFT"}


def test_use_implementation_rejects_unknown_names():
    assert IMPLEMENTATIONS == ("fast", "reference")
    with pytest.raises(ValueError, match="name must be one of"):
        with use_implementation("slow"):
            pass
