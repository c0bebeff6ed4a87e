"""Parity of ``converse2d`` in float32 with the official PyTorch operator on every golden case.

Same cases and quantities as ``test_converse2d_golden.py`` (its own file so that the two halves
run on two pytest-xdist workers). Tolerances (``shared/golden/README.md`` section 5): every array
within 10× the case's stored PyTorch-float32 error (``f32err_*``) plus 1e-6·max|ref|;
``grad_bias`` with the README's absolute tolerance (0.1 for eps 1e-5, 3e-3 for eps 1e-3).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from golden_op import case_keys, parse_key, run_case


@pytest.mark.parametrize("key", case_keys())
def test_float32_within_pytorch_float32_error(key):
    with jax.enable_x64(True):  # the float32 computation itself; x64 only admits float64 refs
        got, ref, f32err = run_case(key, jnp.float32)
    for name in ("out", "grad_x", "grad_weight"):
        err = np.abs(got[name] - ref[name]).max()
        bound = 10 * f32err[name] + 1e-6 * np.abs(ref[name]).max()
        assert err <= bound, (name, err, bound)
    bias_tol = 0.1 if parse_key(key).eps < 1e-4 else 3e-3
    assert np.abs(got["grad_bias"] - ref["grad_bias"]).max() <= bias_tol
