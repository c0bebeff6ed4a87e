"""Layout candidates for Converse-DnCNN on the CPU, measured against the network as it is.

    python benchmarks/dncnn_layout.py                  # 1 thread, inference 256² and train b8 40²
    python benchmarks/dncnn_layout.py --quick

The same parameters (a fresh ``ConverseDnCNN`` init) run through three forward functions:

* ``ours`` — ``model.apply``: NHWC activations, each reverse convolution moves its input to
  NCHW and back (two transposes per block, the padding in NCHW);
* ``nchw_solve`` — NHWC activations, but the 1×1 convolution that feeds the solve writes
  channels-first directly (``einsum('nhwc,cd->ndhw')``) and the one that reads it takes
  channels-first (``einsum('ndhw,dc->nhwc')``): the transposes are folded into the matmuls;
* ``nchw`` — the whole residual stream channels-first, as PyTorch holds it: LayerNorm reduces
  axis 1, every 1×1 convolution is a (D×C)·(C×HW) matmul per sample, no data is moved for the
  FFTs at all.

All three call the operator's own scale-1 pieces (padding, transfer function, FFTs), so they
compute the same function (checked: max |Δ| against ``ours`` is reported and must stay below
1e-4). Inference (batch 1) and one training step (L1 + Adam) are compiled in one worker process
pinned to ``--threads`` CPUs and timed alternately (:func:`benchmarks.common.time_candidates`).
JSON: ``benchmarks/results/dncnn_layout_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

CANDIDATES = ("ours", "nchw_solve", "nchw")


def _solve_nchw(h, spatial: dict, block: Any):
    """The block's Converse2D on channels-first data (N, 2C, H, W) -> same, via the operator's
    own scale-1 pieces (pad, transfer function, rfft2/irfft2, crop)."""
    import importlib

    import jax

    from converse_jax.ops.validation import check_args

    op = importlib.import_module("converse_jax.ops.converse2d")  # the module, not the function

    n, c, hh, ww = h.shape
    p = block.padding
    lam = jax.nn.sigmoid(spatial["bias"] - 9.0) + block.eps
    g = check_args(jax.ShapeDtypeStruct((n, hh, ww, c), h.dtype), spatial["kernel"], lam, 1, p,
                   block.padding_mode, None)
    yp = op._pad_nchw(h, p, block.padding_mode) if p else h
    out = op._filter_scale1(yp, spatial["kernel"][None], op._lam_nchw(lam, g, h.dtype), g)
    return out[:, :, p:-p, p:-p] if p else out


def _ln(x, scale, bias, axis: int):
    import jax.numpy as jnp

    mean = jnp.mean(x, axis=axis, keepdims=True)
    centred = x - mean
    y = centred / jnp.sqrt(jnp.mean(centred * centred, axis=axis, keepdims=True) + 1e-5)
    shape = [1] * x.ndim
    shape[axis] = -1
    return y * scale.reshape(shape) + bias.reshape(shape)


def forward(model, params: dict, x, candidate: str):
    """Converse-DnCNN forward (x NHWC (N, H, W, 1)) in one of :data:`CANDIDATES`."""
    import jax.numpy as jnp

    from converse_jax.nn.converse import gelu

    if candidate == "ours":
        return model.apply({"params": params}, x)
    hp = params["head"]
    if candidate == "nchw":
        y = jnp.einsum("nhwc,cd->ndhw", x, hp["kernel"]) + hp["bias"][:, None, None]
    else:
        y = x @ hp["kernel"] + hp["bias"]
    block = model.block_class(features=model.features, kernel_size=model.kernel_size,
                              padding=model.padding, padding_mode=model.padding_mode, eps=model.eps)
    for i in range(model.num_blocks):
        b = params[f"blocks_{i}"]

        def dense(t, name, src, dst):
            bias = b[name]["bias"]  # noqa: B023  (called inside this iteration)
            return jnp.einsum(f"{src},cd->{dst}", t, b[name]["kernel"]) + (  # noqa: B023
                bias[:, None, None] if dst == "ndhw" else bias)

        if candidate == "nchw":
            t = gelu(dense(_ln(y, b["norm1"]["scale"], b["norm1"]["bias"], 1), "expand1", "nchw", "ndhw"))
            y = y + dense(gelu(_solve_nchw(t, b["spatial"], block)), "project1", "nchw", "ndhw")
            t = gelu(dense(_ln(y, b["norm2"]["scale"], b["norm2"]["bias"], 1), "expand2", "nchw", "ndhw"))
            y = y + dense(t, "project2", "nchw", "ndhw")
        else:
            t = gelu(dense(_ln(y, b["norm1"]["scale"], b["norm1"]["bias"], 3), "expand1", "nhwc", "ndhw"))
            y = y + dense(gelu(_solve_nchw(t, b["spatial"], block)), "project1", "nchw", "nhwd")
            t = gelu(dense(_ln(y, b["norm2"]["scale"], b["norm2"]["bias"], 3), "expand2", "nhwc", "nhwd"))
            y = y + dense(t, "project2", "nhwc", "nhwd")
    tp = params["tail"]
    if candidate == "nchw":
        return jnp.einsum("nchw,cd->nhwd", y, tp["kernel"]) + tp["bias"]
    return y @ tp["kernel"] + tp["bias"]


def worker(payload: dict) -> dict:
    """Compiles the candidates' inference and training step; checks and times them."""
    common.pin_threads(payload["threads"])
    common.apply_malloc(payload["malloc"])
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from converse_jax.models import get_model

    model = get_model("converse_dncnn", **payload["overrides"])
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))["params"]
    # trained-like λ and kernels: biases spread as in the released weights
    params = jax.tree_util.tree_map_with_path(
        lambda path, v: v - 3.0 if "spatial" in jax.tree_util.keystr(path) and v.ndim == 1 else v, params)
    s, b, p = payload["image"], payload["batch"], payload["patch"]
    x = jax.random.uniform(jax.random.key(1), (1, s, s, 1))
    xb = jax.random.uniform(jax.random.key(2), (b, p, p, 1))
    tb = jax.random.uniform(jax.random.key(3), (b, p, p, 1))
    tx = optax.adam(1e-4)
    result: dict[str, Any] = {"inference": {}, "training": {}}
    infer, steps, states = {}, {}, {}
    for name in CANDIDATES:
        infer[name] = jax.jit(lambda q, x, name=name: forward(model, q, x, name)).lower(params, x).compile()

        def step(state, x, t, name=name):
            q, opt = state
            loss, g = jax.value_and_grad(lambda q: jnp.mean(jnp.abs(forward(model, q, x, name) - t)))(q)
            updates, opt = tx.update(g, opt, q)
            return (optax.apply_updates(q, updates), opt), loss

        states[name] = [jax.tree.map(jnp.array, (params, tx.init(params)))]  # copies: donated
        steps[name] = jax.jit(step, donate_argnums=0).lower(states[name][0], xb, tb).compile()
    ref = np.asarray(infer["ours"](params, x))
    losses = {}
    for name in CANDIDATES:
        diff = float(np.abs(np.asarray(infer[name](params, x)) - ref).max())
        if not diff <= 1e-4:
            raise AssertionError(f"{name}: output differs from ours by {diff}")
        result["inference"].setdefault("max_abs_diff", {})[name] = diff
        states[name][0], loss = steps[name](states[name][0], xb, tb)
        losses[name] = float(loss)
    result["training"]["first_loss"] = losses

    def run_step(name):
        states[name][0], loss = steps[name](states[name][0], xb, tb)
        return loss

    calls = {n: (lambda n=n: infer[n](params, x)) for n in CANDIDATES}
    result["inference"]["timing"] = common.time_candidates(calls, reps=payload["reps"], warmup=0)
    calls = {n: (lambda n=n: run_step(n)) for n in CANDIDATES}
    result["training"]["timing"] = common.time_candidates(calls, reps=payload["reps"], warmup=0)
    result["jax"] = common.jax_info()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    common.add_malloc_flag(parser)
    parser.add_argument("--quick", action="store_true", help="tiny network and inputs")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/dncnn_layout_cpu.json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}
    payload = {"threads": args.threads, "malloc": args.malloc, "reps": args.reps,
               "overrides": {"features": 4, "num_blocks": 2} if args.quick else {},
               "image": 24 if args.quick else 256, "batch": 2 if args.quick else 8,
               "patch": 16 if args.quick else 40}
    reply = common.run_worker(Path(__file__), payload, common.worker_env("cpu", args.threads), 7200)
    report = {"benchmark": "dncnn_layout", "threads": args.threads, "config": payload,
              "machine": common.machine_info(), **reply}
    rows = []
    for kind in ("inference", "training"):
        t = reply[kind]["timing"]
        for name in CANDIDATES:
            rows.append([kind, name, common.ms(t[name]["median_s"]), common.ms(t[name]["median_cpu_s"]),
                         t["ours"]["median_s"] / t[name]["median_s"],
                         t["ours"]["median_cpu_s"] / t[name]["median_cpu_s"]])
    report["table"] = common.format_table(
        ["case", "candidate", "ms", "CPU ms", "speed-up vs ours", "speed-up (CPU time)"], rows)
    out = args.out or common.RESULTS_DIR / "dncnn_layout_cpu.json"
    common.write_json(out, report)
    print(report["table"])
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
