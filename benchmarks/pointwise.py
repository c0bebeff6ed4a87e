"""The pointwise parts of a ConverseBlock on the CPU: this library's forms against the plain ones.

    python benchmarks/pointwise.py                 # 1 thread, Converse-DnCNN's shapes
    python benchmarks/pointwise.py --quick         # tiny shapes (smoke test)

Two pairs, each timed alternately in one worker process pinned to ``--threads`` CPUs
(:func:`benchmarks.common.time_candidates`) and checked to agree before timing:

* **1×1 convolution** ``x (N, H, W, C) · W (C, 2C)``, the value and both gradients
  (``jax.vjp``, cotangent of the output's shape): ``lax.dot_general`` contracting the 4-D array
  (what ``nn.Dense`` does by default) against
  :func:`converse_jax.nn.pointwise.pointwise_dot_general` (the same product on the flattened
  (N·H·W, C) matrix);
* **GELU**, the forward pass alone and with its gradient: ``jax.nn.gelu(approximate=False)``
  (through ``erfc``) against :func:`converse_jax.nn.converse.gelu` (``erf``, derivative written
  out).

Shapes: the expand convolution and the GELU of a Converse-DnCNN training step (batch 8 of 40×40,
C = 64) and of its inference on a 256×256 image (batch 1). JSON:
``benchmarks/results/pointwise_cpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

# case -> (N, H, W, C): Converse-DnCNN's blocks at C = 64 (the GELUs run on 2C).
SHAPES = {"train b8 40²": (8, 40, 40, 64), "inference 256²": (1, 256, 256, 64)}
QUICK_SHAPES = {"quick": (2, 8, 8, 4)}


def _pairs(shape: tuple[int, ...]) -> dict[str, dict]:
    """{work: {candidate: compiled call of no arguments}} on random inputs of ``shape``."""
    import jax

    from converse_jax.nn.converse import gelu
    from converse_jax.nn.pointwise import pointwise_dot_general

    n, h, w, c = shape
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], shape)
    kernel = jax.random.normal(keys[1], (c, 2 * c)) * 0.02
    g = jax.random.normal(keys[2], (n, h, w, 2 * c))
    dims = (((3,), (0,)), ((), ()))

    def conv(dot_general):
        def run(x, kernel, g):
            y, pull = jax.vjp(lambda x, k: dot_general(x, k, dims), x, kernel)
            return y, *pull(g)

        compiled = jax.jit(run).lower(x, kernel, g).compile()
        return lambda: compiled(x, kernel, g)

    def act(f, with_grad: bool):
        run = (lambda t: jax.vjp(f, t)[1](t)[0] + f(t)) if with_grad else f
        compiled = jax.jit(run).lower(g).compile()
        return lambda: compiled(g)

    gelus = {"jax.nn.gelu": lambda t: jax.nn.gelu(t, approximate=False), "ours": gelu}
    return {
        "1×1 conv, value + gradients": {"lax.dot_general": conv(jax.lax.dot_general),
                                        "pointwise_dot_general": conv(pointwise_dot_general)},
        "GELU forward": {k: act(f, False) for k, f in gelus.items()},
        "GELU forward + gradient": {k: act(f, True) for k, f in gelus.items()},
    }


def worker(payload: dict) -> dict:
    """Checks and times every pair at one shape; {work: {"max_abs_diff", "timing"}}."""
    common.pin_threads(payload["threads"])
    common.apply_malloc(payload["malloc"])
    import jax
    import numpy as np

    results = {}
    for work, calls in _pairs(tuple(payload["shape"])).items():
        outs = [jax.tree.leaves(fn()) for fn in calls.values()]
        diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(*outs))
        if not diff <= 1e-4:
            raise AssertionError(f"{work}: the candidates differ by {diff}")
        timing = common.time_candidates(calls, reps=payload["reps"], min_sample_s=payload["min_sample_s"])
        results[work] = {"max_abs_diff": diff, "timing": timing}
    return {"results": results, "jax": common.jax_info()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    common.add_malloc_flag(parser)
    parser.add_argument("--reps", type=int, default=7, help="timed rounds per candidate (default 7)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/pointwise_cpu.json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}
    if args.reps < 1:
        parser.error(f"--reps must be positive, got {args.reps}")
    report = {"benchmark": "pointwise", "threads": args.threads, "malloc": args.malloc,
              "machine": common.machine_info(), "shapes": {}}
    rows = []
    for case, shape in (QUICK_SHAPES if args.quick else SHAPES).items():
        payload = {"shape": shape, "threads": args.threads, "malloc": args.malloc, "reps": args.reps,
                   "min_sample_s": 0.01 if args.quick else 0.2}
        reply = common.run_worker(Path(__file__), payload, common.worker_env("cpu", args.threads), 3600)
        report["jax"] = reply["jax"]
        report["shapes"][case] = {"shape": shape, **reply["results"]}
        for work, res in reply["results"].items():
            (base, t0), (ours, t1) = res["timing"].items()
            rows.append([case, work, f"{base}: {common.ms(t0['median_s']):.3g}", f"{ours}: {common.ms(t1['median_s']):.3g}",
                         t0["median_s"] / t1["median_s"]])
    report["table"] = common.format_table(["shape", "work", "plain (ms)", "ours (ms)", "speed-up"], rows)
    out = common.write_json(args.out or common.RESULTS_DIR / "pointwise_cpu.json", report)
    print(f"pointwise parts on CPU ({report['machine']['cpu']}), {args.threads} thread(s), malloc={args.malloc}")
    print(report["table"])
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
