"""converse_jax.utils.host_memory: the second call of an executable faults in no fresh pages."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import jax.numpy as jnp
import pytest

from converse_jax.utils.host_memory import keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

# Page faults of the third call of a jitted FFT filter whose buffers (~130 MB) exceed what
# glibc keeps in a thread's arena; "reuse" calls keep_freed_memory() before JAX starts.
SCRIPT = """
import os, resource, sys
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])  # one runtime thread: a fixed order of allocations
if sys.argv[1] == "reuse":
    from converse_jax.utils.host_memory import keep_freed_memory
    assert keep_freed_memory()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.fft.irfft2(jnp.fft.rfft2(x) * 2.0).sum())
x = jnp.ones((1, 128, 256, 256))
f(x).block_until_ready()
f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
f(x).block_until_ready()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _third_call_faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc as shipped
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def test_freed_buffers_are_reused_without_page_faults():
    default, reuse = _third_call_faults("default"), _third_call_faults("reuse")
    assert default > 5_000, f"glibc's default should map the buffers afresh; {default} faults"
    assert reuse < default / 20, f"keep_freed_memory: {reuse} faults against {default} by default"


def test_warns_when_jax_already_runs():
    jnp.ones(2).block_until_ready()  # the runtime has started in this process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert keep_freed_memory()
    assert any("before the first JAX computation" in str(w.message) for w in caught)
