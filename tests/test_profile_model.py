"""``benchmarks/profile_model.py``: the HLO parsing, the classification into kinds of work and
the reading of XLA's own trace, on a tiny Converse-DnCNN, Converse-SRResNet and ConverseNet compiled
in this process."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import profile_model as pm  # noqa: E402
from converse_jax.models import get_model  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("network", sorted(pm.NETWORKS))
def test_profile_classifies_a_tiny_network(network):
    class_name, channels, _, overrides = pm.NETWORKS[network]
    model = get_model(network, **{**overrides, "num_blocks": 1})
    x = jnp.ones((1, 12, 12, channels))
    params = model.init(jax.random.key(0), x)["params"]
    compiled = jax.jit(lambda p, x: model.apply({"params": p}, x)).lower(params, x).compile()
    module, insts = pm.parse_hlo(compiled.as_text())
    assert module.startswith("jit_")
    dep = pm.data_dependent(insts, ("x",))
    kinds = {name: pm.classify(inst, name in dep, class_name) for name, inst in insts.items()
             if inst["opcode"] not in ("parameter", "constant")}
    assert set(kinds.values()) <= set(pm.KINDS)
    # one rfft2 and one irfft2 per solve: per block application, and Converse-SRResNet's two
    # ×2 up-samplers after its body block, two up-sampling blocks and high-resolution block
    solves = {"converse_dncnn": 1, "converse_srresnet": 4 + 2, "conversenet": overrides.get("num_iterations")}
    assert sum(insts[n]["opcode"] == "fft" for n in kinds) == 2 * solves[network]
    assert {"FFT", "transfer function", "1×1 conv", "LayerNorm"} <= set(kinds.values())
    # the transfer function depends on the kernel only
    assert all(n not in dep for n, k in kinds.items() if k == "transfer function" and "dot" not in n)

    if network != "converse_dncnn":
        return  # reading the trace does not depend on the network
    times, wall = pm._trace_times(lambda: compiled(params, x), 2, module)
    assert wall > 0 and times and set(times) <= set(insts)
    assert all(t >= 0 for t in times.values())
