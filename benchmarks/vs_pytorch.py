"""This library against a PyTorch version of the same networks, same weights, same inputs.

    pip install -e ".[bench]"                       # torch (optional, benchmarks only)
    python benchmarks/vs_pytorch.py                 # CPU, 1 and 2 threads, all four networks
    python benchmarks/vs_pytorch.py --threads 1 --only converse_dncnn
    python benchmarks/vs_pytorch.py --quick         # smoke test: tiny networks, random weights
    python benchmarks/vs_pytorch.py --quick --separate   # the same, each training side in its own process

The PyTorch side is :mod:`benchmarks.torch_converse`: Algorithm 1 in eager PyTorch with
``torch.fft`` and the four released networks, loading the ``.pth`` files of
``../shared/data/weights`` (``--weights``); the JAX side gets the same state dict through
:func:`converse_jax.pretrained.from_torch`. Cases per network: **inference** (batch 1, the
images of ``benchmarks/models.py``: Converse-DnCNN 256×256 gray, Converse-SRResNet 128×128 → ×4,
ConverseNet and Converse-USRNet 256×256 RGB, USRNet with a 7×7 blur kernel, sf 1) and one
**training step** (L1 loss, gradient, Adam lr 1e-4; the configs' patch sizes — DnCNN 40², SR 96²
HR / 24² LR, deblurring 96² — batch ``--train-batch``, default ``TRAIN_BATCH``: 8, and 4 for
ConverseNet and Converse-USRNet, whose PyTorch steps need 16.7 and 18.3 GB there).

Parity before timing (a failed check aborts the case):

* inference, on a small input of the same network (48×48 LR or image): ours in float32 against
  the PyTorch network run in **float64** must agree to ``PARITY_TOL`` = 1e-4 (Algorithm 1 in
  float32 divides by λ ≈ 1e-4 and loses up to ~4e-4 on SRResNet/USRNet: its own float32-vs-float64
  error is recorded as ``torch_f32_vs_f64``), relative to the output's size where that exceeds 1;
  the float32 outputs of the timed input are compared too (``max_abs_diff_f32``, reported);
* training, the first step's loss of both sides from the same parameters and batch (relative
  difference ≤ 1e-4).

Each (network, case, threads) runs in its own worker process pinned to ``threads`` CPUs
(``torch.set_num_threads`` and XLA's pool, see :mod:`benchmarks.common`); the two candidates are
timed alternately there (:func:`benchmarks.common.time_candidates`), and the JSON records wall
and CPU-time medians. The training steps of ``SEPARATE`` (ConverseNet, Converse-USRNet; all with
``--separate``) do not fit in 24 GB together: there each round starts one worker per side (a
warm-up call, then one timed call; first-step losses compared across the processes), the order
alternating by round. On a shared machine trust CPU time and the medians, not single samples.
JSON: ``benchmarks/results/vs_pytorch_cpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

NETWORKS = ("converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet")
# network -> (channels, inference LR size (H, W), SR scale, training HR patch, blur kernel or None)
SETUP = {
    "converse_dncnn": (1, (256, 256), 1, 40, None),
    "converse_srresnet": (3, (128, 128), 4, 96, None),
    "conversenet": (3, (256, 256), 1, 96, None),
    "converse_usrnet": (3, (256, 256), 1, 96, 7),
}
QUICK_KWARGS = {
    "converse_dncnn": {"features": 4, "num_blocks": 2},
    "converse_srresnet": {"features": 4, "num_blocks": 1},
    "conversenet": {"features": 4, "num_blocks": 1, "num_iterations": 2},
    "converse_usrnet": {"features": 4, "num_blocks": 1, "num_iterations": 2},
}
# Training batch (``--train-batch`` overrides): 8, but PyTorch's ConverseNet / Converse-USRNet
# steps alone reach 16.7 / 18.3 GB resident at batch 4 (8.8 GB at batch 2; measured with
# ``--malloc reuse``), so batch 8 cannot run on a 24 GB machine and batch 4 only with each
# side in its own process (SEPARATE: each round runs one worker per side).
TRAIN_BATCH = {"converse_dncnn": 8, "converse_srresnet": 8, "conversenet": 4, "converse_usrnet": 4}
SEPARATE = ("conversenet", "converse_usrnet")
PARITY_TOL = 1e-4
PARITY_SIZE = 48
DEFAULT_WEIGHTS = common.REPO_ROOT.parent / "shared" / "data" / "weights"


# --------------------------------------------------------------------------- worker side


def _networks(payload: dict):
    """(torch module, flax model, flax variables) holding the same parameters."""
    import torch

    from benchmarks.torch_converse import NETWORKS as TORCH_NETWORKS
    from converse_jax.models import get_model
    from converse_jax.pretrained import from_torch

    name, kwargs = payload["network"], payload["kwargs"]
    torch.manual_seed(0)
    net = TORCH_NETWORKS[name](**kwargs)
    if payload["weights"]:
        net.load_state_dict(torch.load(payload["weights"], map_location="cpu"))
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return net, get_model(name, **kwargs), from_torch(state, name, **kwargs)


def _inputs(payload: dict, batch: int, h: int, w: int, seed: int) -> dict:
    """NHWC input (and blur kernels) as NumPy float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    channels, _, _, _, ksize = SETUP[payload["network"]]
    data = {"x": rng.random((batch, h, w, channels), dtype=np.float32)}
    if ksize:
        k = rng.random((batch, ksize, ksize), dtype=np.float32)
        data["kernel"] = k / k.sum(axis=(1, 2), keepdims=True)
    return data


def _torch_args(data: dict, dtype=None) -> tuple:
    import torch

    x = torch.from_numpy(data["x"]).permute(0, 3, 1, 2).contiguous()
    args = (x,) if "kernel" not in data else (x, torch.from_numpy(data["kernel"]), 1)
    return tuple(a.to(dtype) if dtype is not None and isinstance(a, torch.Tensor) else a for a in args)


def _jax_apply(model):
    import jax

    return jax.jit(lambda v, x, *k: model.apply(v, x, *k, *((1,) if k else ())))


def _parity(net, model, variables, payload: dict) -> dict:
    """Ours (float32) against the PyTorch network in float64 and float32, on a small input."""
    import copy

    import numpy as np
    import torch

    data = _inputs(payload, 1, PARITY_SIZE, PARITY_SIZE, seed=5)
    with torch.no_grad():
        y32 = net(*_torch_args(data)).permute(0, 2, 3, 1).numpy()
        y64 = copy.deepcopy(net).double()(*_torch_args(data, torch.float64)).permute(0, 2, 3, 1).numpy()
    ours = np.asarray(_jax_apply(model)(variables, data["x"], *([data["kernel"]] if "kernel" in data else [])))
    out = {"ours_vs_torch_f64": float(np.abs(ours - y64).max()),
           "torch_f32_vs_f64": float(np.abs(y32 - y64).max()),
           "ours_vs_torch_f32": float(np.abs(ours - y32).max()),
           "output_max_abs": float(np.abs(y64).max())}
    if not out["ours_vs_torch_f64"] <= PARITY_TOL * max(1.0, out["output_max_abs"]):
        raise AssertionError(f"{payload['network']}: outputs differ from PyTorch (float64): {out}")
    return out


def _inference(payload: dict) -> dict:
    import numpy as np
    import torch

    net, model, variables = _networks(payload)
    net.eval()
    parity = _parity(net, model, variables, payload)
    h, w = payload["image"]
    data = _inputs(payload, 1, h, w, seed=1)
    targs = _torch_args(data)
    jargs = [data["x"], *([data["kernel"]] if "kernel" in data else [])]
    compiled, compile_s = common.compile_timed(_jax_apply(model), variables, *jargs)

    def run_torch():
        with torch.no_grad():
            return net(*targs)

    y_t = run_torch().permute(0, 2, 3, 1).numpy()
    y_j = np.asarray(compiled(variables, *jargs))
    parity["max_abs_diff_f32"] = float(np.abs(y_t - y_j).max())
    calls = {"torch": run_torch, "ours": lambda: compiled(variables, *jargs)}
    timing = common.time_candidates(calls, reps=payload["reps"], min_sample_s=payload["min_sample_s"], warmup=0)
    timing["ours"]["compile_s"] = compile_s
    return {"parity": parity, "output_shape": list(y_j.shape), "candidates": timing}


def _jax_train_step(model, with_kernel: bool):
    import jax
    import jax.numpy as jnp
    import optax

    tx = optax.adam(1e-4)

    def loss_fn(params, x, target, *k):
        y = model.apply({"params": params}, x, *k, *((1,) if with_kernel else ()))
        return jnp.mean(jnp.abs(y - target))

    def step(state, x, target, *k):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x, target, *k)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return tx, jax.jit(step, donate_argnums=0)


def _torch_train_call(net, data: dict, target):
    """One PyTorch training step (L1, backward, Adam) as a zero-argument call returning the loss."""
    import torch

    net.train()
    targs, ttarget = _torch_args(data), torch.from_numpy(target).permute(0, 3, 1, 2).contiguous()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def run_torch():
        opt.zero_grad(set_to_none=True)
        loss = (net(*targs) - ttarget).abs().mean()
        loss.backward()
        opt.step()
        return loss.detach()

    return run_torch, {}


def _jax_train_call(model, variables, data: dict, target):
    """Our jitted training step (same loss and optimizer), compiled ahead of time."""
    import jax

    tx, step = _jax_train_step(model, "kernel" in data)
    params = jax.tree.map(jax.numpy.asarray, variables["params"])
    state = [(params, tx.init(params))]
    jargs = [data["x"], target, *([data["kernel"]] if "kernel" in data else [])]
    compiled, compile_s = common.compile_timed(step, state[0], *jargs)

    def run_ours():
        state[0], loss = compiled(state[0], *jargs)
        return loss

    return run_ours, {"compile_s": compile_s}


def _training(payload: dict) -> dict:
    """Times the training steps of ``payload['sides']`` (both, or one when the two would not fit
    in memory together: see ``SEPARATE``); the first call of each gives its first-step loss."""
    import numpy as np

    net, model, variables = _networks(payload)
    batch, patch = payload["batch"], payload["patch"]
    scale = SETUP[payload["network"]][2]
    data = _inputs(payload, batch, patch // scale, patch // scale, seed=2)
    target = np.random.default_rng(3).random((batch, patch, patch, data["x"].shape[-1]), dtype=np.float32)
    build = {"torch": lambda: _torch_train_call(net, data, target),
             "ours": lambda: _jax_train_call(model, variables, data, target)}
    calls, extra = {}, {}
    for side in payload["sides"]:
        calls[side], extra[side] = build[side]()
    losses = {side: float(call()) for side, call in calls.items()}
    inner = 1 if len(calls) == 1 else None  # a lone side needs no calibration call: one call per sample
    timing = common.time_candidates(calls, reps=payload["reps"], min_sample_s=payload["min_sample_s"],
                                    warmup=0, inner=inner)
    for side in calls:
        timing[side].update(extra[side])
    return {"parity": _loss_parity(payload, losses), "candidates": timing}


def _loss_parity(payload: dict, losses: dict[str, float]) -> dict:
    """The first-step losses and, when both sides are there, their relative difference (checked)."""
    if set(losses) != {"torch", "ours"}:
        return {"first_loss": losses}
    rel = abs(losses["torch"] - losses["ours"]) / abs(losses["torch"])
    if not rel <= PARITY_TOL:
        raise AssertionError(f"{payload['network']}: first-step losses differ: {losses}")
    return {"first_loss": losses, "relative_diff": rel}


def worker(payload: dict) -> dict:
    """Runs one case (``payload['kind']``: 'inference' or 'training') and returns its results."""
    common.pin_threads(payload["threads"])
    common.apply_malloc(payload["malloc"])
    import torch

    torch.set_num_threads(payload["threads"])
    result = _inference(payload) if payload["kind"] == "inference" else _training(payload)
    result["jax"] = common.jax_info()
    result["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return result


# --------------------------------------------------------------------------- orchestrator


def _cases(args: argparse.Namespace) -> dict[str, dict]:
    weights = args.weights or DEFAULT_WEIGHTS
    cases = {}
    for threads in args.threads:
        for name in args.only:
            _, (h, w), _, patch, _ = SETUP[name]
            kwargs, batch = {}, args.train_batch or TRAIN_BATCH[name]
            path = weights / f"{name}.pth"
            if args.quick:
                kwargs, path, (h, w), patch, batch = QUICK_KWARGS[name], None, (24, 24), 24, 2
            elif not path.is_file():
                raise SystemExit(f"--weights: {path} not found (the released .pth files are needed)")
            base = {"network": name, "threads": threads, "malloc": args.malloc, "kwargs": kwargs, "reps": args.reps,
                    "weights": str(path) if path else None, "min_sample_s": 0.05}
            if "inference" in args.kinds:
                cases[f"{name}/inference/{threads}t"] = {**base, "kind": "inference", "image": (h, w)}
            if "training" in args.kinds:
                cases[f"{name}/training/{threads}t"] = {**base, "kind": "training", "batch": batch, "patch": patch,
                                                        "sides": ["torch", "ours"],
                                                        "separate": args.separate or name in SEPARATE}
    return cases


def _run_separate(payload: dict, env: dict[str, str]) -> dict:
    """A training case whose two sides do not fit in memory together: each of ``reps`` rounds
    runs one worker per side (one warm-up call, one timed call), the order alternating by round;
    the samples of each side are pooled and the first-step losses compared across processes."""
    replies: dict[str, list[dict]] = {"torch": [], "ours": []}
    for r in range(payload["reps"]):
        for side in ("torch", "ours") if r % 2 == 0 else ("ours", "torch"):
            one = {**payload, "sides": [side], "reps": 1}
            replies[side].append(common.run_worker(Path(__file__), one, env, timeout_s=7200))
    candidates = {}
    for side, runs in replies.items():
        stats = [run["candidates"][side] for run in runs]
        candidates[side] = common.summarize(*([x for st in stats for x in st[key]]
                                              for key in ("samples", "cpu_samples", "page_faults")), inner=1)
        if side == "ours":
            candidates[side]["compile_s"] = stats[0]["compile_s"]
    losses = {side: runs[0]["parity"]["first_loss"][side] for side, runs in replies.items()}
    last = replies["ours"][-1]
    return {"parity": _loss_parity(payload, losses), "candidates": candidates, "separate_processes": True,
            "peak_rss_gib": {side: max(run["peak_rss_gib"] for run in runs) for side, runs in replies.items()},
            "jax": last["jax"], "torch": last["torch"]}


def _row(payload: dict, reply: dict) -> list[Any]:
    t, o = reply["candidates"]["torch"], reply["candidates"]["ours"]
    scale = SETUP[payload["network"]][2]
    if payload["kind"] == "inference":
        h, w = payload["image"]
        work = f"inference {w}×{h}" + (f" → ×{scale}" if scale > 1 else "")
        check = f"{reply['parity']['ours_vs_torch_f64']:.1e} (f64)"
    else:
        work = f"train step, batch {payload['batch']}, {payload['patch']}²"
        check = f"{reply['parity']['relative_diff']:.1e} (loss)"
    return [payload["network"], work, payload["threads"], t["median_s"], o["median_s"],
            t["median_s"] / o["median_s"], t["median_cpu_s"] / o["median_cpu_s"], check]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="1,2", help="comma-separated CPU thread counts (default 1,2)")
    parser.add_argument("--only", default=",".join(NETWORKS), help="comma-separated networks")
    parser.add_argument("--kinds", default="inference,training", help="inference, training or both")
    parser.add_argument("--reps", type=int, default=3, help="timed rounds per candidate (default 3)")
    common.add_malloc_flag(parser)
    parser.add_argument("--train-batch", type=int, help="training batch (default 8; 4 for ConverseNet and USRNet)")
    parser.add_argument("--separate", action="store_true",
                        help=f"every training step in its own process per round (always for {', '.join(SEPARATE)})")
    parser.add_argument("--weights", type=Path, help=f"folder of the released .pth files (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--quick", action="store_true", help="tiny networks with random weights, tiny inputs")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/vs_pytorch_cpu.json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}
    try:
        args.threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads: comma-separated integers expected, got {args.threads!r}")
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := sorted(set(args.only) - set(NETWORKS)):
        parser.error(f"--only: unknown network(s) {unknown}; choose from {','.join(NETWORKS)}")
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not args.kinds or set(args.kinds) - {"inference", "training"}:
        parser.error(f"--kinds: 'inference', 'training' or both, got {args.kinds}")
    if args.reps < 1 or (args.train_batch is not None and args.train_batch < 1):
        parser.error("--reps and --train-batch must be positive")

    out = args.out or common.RESULTS_DIR / "vs_pytorch_cpu.json"
    env = common.worker_env("cpu", None)
    report = {"benchmark": "vs_pytorch", "device": "cpu", "quick": args.quick, "reps": args.reps, "malloc": args.malloc,
              "parity_tol": PARITY_TOL, "machine": common.machine_info(), "cases": {}}
    rows = []
    for name, payload in _cases(args).items():
        env["BENCH_THREADS"] = str(payload["threads"])
        if payload.get("separate"):
            reply = _run_separate(payload, env)
        else:
            reply = common.run_worker(Path(__file__), payload, env, timeout_s=7200)
        report["jax"], report["torch"] = reply.pop("jax"), reply.pop("torch")
        report["cases"][name] = {"config": payload, **reply}
        rows.append(_row(payload, reply))
        common.write_json(out, report)  # after every case: a run cut off keeps its results
        print(f"{name} done", file=sys.stderr, flush=True)
    headers = ["network", "work", "threads", "PyTorch s", "ours s", "speed-up", "speed-up (CPU time)",
               "parity"]
    report["table"] = common.format_table(headers, rows)
    common.write_json(out, report)
    print(f"vs PyTorch {report.get('torch', {}).get('version')} on CPU ({report['machine']['cpu']}), "
          f"malloc={args.malloc}, jax {report.get('jax', {}).get('jax')}, {report['machine']['date_utc']} UTC")
    print(report["table"])
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
