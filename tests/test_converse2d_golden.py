"""Parity of ``converse2d`` with the official PyTorch operator on every golden case.

Each stored case gives the forward output and the vector-Jacobian products of ``sum(out·g)``
with respect to the input, the kernel and the bias (λ = sigmoid(bias − 9) + eps).

Tolerances (``shared/golden/README.md`` section 5):

* float64: ``max|impl − ref| ≤ 1e-8·max|ref|`` for out, grad_x and grad_weight. ``grad_bias`` is
  a small number made of large cancelling sums; the float64 reference itself carries a relative
  error of up to ~1e-7 there (our literal Algorithm-1 transcription differs from it by as much),
  so it is held to 1e-8 of the case's largest reference value over all four arrays.
* float32: in ``test_converse2d_golden_float32.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import shared_path
from golden_op import GOLDEN, case_keys, load, parse_key, run_case

from converse_jax import converse2d


@pytest.mark.parametrize("key", case_keys())
def test_float64_matches_official(key):
    with jax.enable_x64(True):
        got, ref, _ = run_case(key, jnp.float64)
    case_max = max(np.abs(r).max() for r in ref.values())
    for name in ("out", "grad_x", "grad_weight"):
        assert got[name].shape == ref[name].shape, name
        err = np.abs(got[name] - ref[name]).max()
        assert err <= 1e-8 * np.abs(ref[name]).max(), (name, err)
    err = np.abs(got["grad_bias"] - ref["grad_bias"]).max()
    assert err <= 1e-8 * case_max, ("grad_bias", err)


@pytest.mark.parametrize("key", case_keys("skipped_keys"))
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
