"""The PyTorch comparison benchmark (``benchmarks/vs_pytorch.py``) end to end in ``--quick`` mode.

Skipped when ``torch`` (the optional ``bench`` extra) is not installed. Tiny networks with random
weights, one repetition: the script itself checks that our outputs match the PyTorch version
(run in float64) and that the first training losses agree before it times anything, and fails
otherwise; here the recorded checks and the JSON structure are asserted. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch (optional 'bench' extra) is not installed")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_vs_pytorch_quick(tmp_path):
    out = tmp_path / "vs.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "vs_pytorch.py"), "--quick", "--reps", "1",
           "--threads", "1", "--only", "converse_usrnet", "--out", str(out)]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "vs_pytorch" and report["quick"] is True
    # USRNet covers the most: per-sample kernels, the ×1 data step, the alpha blocks
    assert set(report["cases"]) == {"converse_usrnet/inference/1t", "converse_usrnet/training/1t"}
    for name, case in report["cases"].items():
        assert set(case["candidates"]) == {"torch", "ours"}
        for stats in case["candidates"].values():
            assert stats["median_s"] > 0 and len(stats["samples"]) == 1
        parity = case["parity"]
        if "/inference/" in name:
            assert parity["ours_vs_torch_f64"] <= 1e-4 * max(1.0, parity["output_max_abs"])
        else:  # USRNet's training sides run in separate processes (SEPARATE): losses compared across them
            assert case["separate_processes"] is True and set(case["peak_rss_gib"]) == {"torch", "ours"}
            assert parity["relative_diff"] <= 1e-4
    assert report["table"].startswith("| network | work | threads |")
    assert "| converse_usrnet | train step, batch 2, 24² | 1 |" in report["table"]
