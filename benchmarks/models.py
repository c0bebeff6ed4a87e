"""Benchmark of the networks built on the fast operator against the same networks on Algorithm 1.

    python benchmarks/models.py                    # CPU, 1 thread
    python benchmarks/models.py --threads 2
    python benchmarks/models.py --device gpu
    python benchmarks/models.py --quick            # smoke test: tiny networks and images
    python benchmarks/models.py --device gpu --dtype bfloat16   # networks computing in bfloat16

Inference (batch 1, float32, NHWC): Converse-DnCNN on 256×256 and 481×321 gray images,
Converse-SRResNet 128×128 → 512×512 RGB, ConverseNet and Converse-USRNet (7×7 blur kernel,
sf 1) on 256×256 RGB. Training: one optimisation step — L1 loss, gradient, Adam update, state
donated — per network at its config's patch size (``configs/<name>.py``; the KAIR recipe values
when a config cannot be loaded: DnCNN 40×40 gray batch 64, SRResNet 96×96 HR batch 32, deblurring
96×96 batch 48), reported as images/s. On the CPU the training batch defaults to 2 (``--train-batch``
sets it; ``--train-batch 0`` uses the config's batch): one Algorithm-1 step of Converse-DnCNN at
batch 64 takes minutes on a laptop-class core. Also Converse-DnCNN's training step with
``remat=True`` (each block rematerialised in the backward pass) against ``remat=False``.

``--dtype bfloat16`` (or ``float16``) builds every network with that computation dtype (float32
parameters and inputs; see :mod:`converse_jax.nn.precision`); compare with a float32 run. Only
meaningful on an accelerator: XLA's CPU backend has no fast bfloat16 arithmetic.

Candidates: ``fast`` (the network as is) and ``reference`` (the same network, same parameters,
traced inside ``converse_jax.ops.converse2d.use_implementation("reference")``, i.e. every reverse
convolution runs the literal Algorithm 1); ``fast_remat`` for the remat comparison. They are
compiled in one worker process per case, timed alternately (median of ``--reps`` rounds), and
their peak memory is reported from XLA's compiled memory analysis (``peak_estimate`` =
arguments + outputs − aliased (donated) + temporaries, in the tables; ``temp`` for the remat
comparison). The JSON also holds each candidate's resident-set growth during one call, measured
in the same process one candidate after the other (the worker runs with glibc's ``mmap``
threshold fixed at 256 KiB, so freed buffers go back to the system; timings therefore include
the page faults of fresh buffers, for every candidate alike). That figure is only indicative:
donated inputs freed during a training step can make it negative, and untouched allocations do
not count; XLA's figure is the one to compare (and the one that matters on a
GPU). Speed-ups are ratios of wall-clock medians and, on the CPU, of CPU-time medians (see
``benchmarks/converse2d.py`` for why). JSON: ``benchmarks/results/models_<device>_<threads>t.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

# name -> (model, input (H, W, C), blur kernel size or None, scale factor passed to the model)
INFERENCE = {
    "converse_dncnn_256": ("converse_dncnn", (256, 256, 1), None),
    "converse_dncnn_481x321": ("converse_dncnn", (321, 481, 1), None),
    "converse_srresnet_128": ("converse_srresnet", (128, 128, 3), None),
    "conversenet_256": ("conversenet", (256, 256, 3), None),
    "converse_usrnet_256": ("converse_usrnet", (256, 256, 3), 7),
}
# model -> recipe fallback: (batch, HR patch, channels, scale, blur kernel size or None)
TRAINING = {
    "converse_dncnn": (64, 40, 1, 1, None),
    "converse_srresnet": (32, 96, 3, 4, None),
    "conversenet": (48, 96, 3, 1, None),
    "converse_usrnet": (48, 96, 3, 1, 7),
}
# Tiny networks for --quick (smoke tests): same code paths, seconds to compile.
QUICK_OVERRIDES = {
    "converse_dncnn": {"features": 4, "num_blocks": 2},
    "converse_srresnet": {"features": 4, "num_blocks": 1},
    "conversenet": {"features": 4, "num_blocks": 1, "num_iterations": 2},
    "converse_usrnet": {"features": 4, "num_blocks": 1, "num_iterations": 2},
}
CPU_TRAIN_BATCH = 2


def training_setup(model: str) -> dict[str, Any]:
    """Batch, HR patch, channels, scale, kernel size and model overrides of ``model``'s config.

    Reads ``configs/<model>.py`` (needs ``ml_collections``); falls back to :data:`TRAINING`
    (``source`` says which was used). The scale is the network's (the data config of a
    non-SR task carries an unused one).
    """
    batch, patch, channels, scale, ksize = TRAINING[model]
    setup = {"batch": batch, "patch": patch, "channels": channels, "scale": scale, "kernel": ksize,
             "overrides": {}, "source": "recipe"}
    try:
        config = importlib.import_module(f"configs.{model}").get_config()
    except ImportError:
        return setup
    data = config.data
    setup.update(
        batch=int(config.batch_size),
        patch=int(data.patch_size),
        channels=int(data.channels),
        overrides=dict(config.model_overrides),
        source=f"configs/{model}.py",
    )
    return setup


# --------------------------------------------------------------------------- worker side


def _build(model_name: str, overrides: dict[str, Any], channels: int, ksize: int | None):
    """(model, variables) with parameters from a fixed key."""
    import jax
    import jax.numpy as jnp

    from converse_jax.models import get_model

    model = get_model(model_name, **overrides)
    x = jnp.zeros((1, 16, 16, channels), jnp.float32)
    args = (x,) if ksize is None else (x, jnp.full((1, ksize, ksize), 1.0 / ksize**2, jnp.float32), 1)
    return model, model.init(jax.random.key(0), *args)


def _blur_kernels(n: int, k: int):
    """(n, k, k) random normalised blur kernels (positive, summing to one)."""
    import jax

    z = jax.random.uniform(jax.random.key(7), (n, k * k))
    return (z / z.sum(axis=1, keepdims=True)).reshape(n, k, k)


def _compile_candidates(make_fn, impls: dict[str, tuple[str, Any]], args_of):
    """Traces and compiles ``make_fn(model)`` per candidate inside its implementation context.

    ``impls``: candidate -> (implementation, model). Returns (compiled, compile_s, xla_memory).
    """
    from converse_jax.ops.converse2d import use_implementation

    compiled, compile_s, memory = {}, {}, {}
    for name, (impl, model) in impls.items():
        with use_implementation(impl):
            compiled[name], compile_s[name] = common.compile_timed(make_fn(model), *args_of(name))
        memory[name] = common.xla_memory(compiled[name])
    return compiled, compile_s, memory


def _inference(payload: dict) -> dict:
    import jax

    model_name, (h, w, c), ksize = payload["model"], payload["image"], payload["kernel"]
    model, variables = _build(model_name, payload["overrides"], c, ksize)
    x = jax.random.uniform(jax.random.key(1), (1, h, w, c))
    extra = () if ksize is None else (_blur_kernels(1, ksize),)
    sf = () if ksize is None else (1,)  # USRNet: scale factor 1 (deblurring), static
    make = lambda m: jax.jit(lambda v, x, *e: m.apply(v, x, *e, *sf))  # noqa: E731 — fresh per candidate
    compiled, compile_s, memory = _compile_candidates(
        make, {"fast": ("fast", model), "reference": ("reference", model)}, lambda _: (variables, x, *extra)
    )
    outputs = {name: fn(variables, x, *extra) for name, fn in compiled.items()}  # warm-up
    diff = float(abs(outputs["fast"] - outputs["reference"]).max())
    rss = {name: common.measure_peak_rss(lambda fn=fn: fn(variables, x, *extra)) for name, fn in compiled.items()}
    calls = {name: (lambda fn=fn: fn(variables, x, *extra)) for name, fn in compiled.items()}
    timing = common.time_candidates(calls, reps=payload["reps"], min_sample_s=payload["min_sample_s"], warmup=0)
    for name in calls:
        timing[name].update(compile_s=compile_s[name], xla_memory=memory[name], rss_mib=rss[name])
        timing[name]["images_per_s"] = 1.0 / timing[name]["median_s"]
    return {"output_shape": list(outputs["fast"].shape), "max_abs_diff_fast_vs_reference": diff,
            "candidates": timing}


def _training(payload: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    model_name, batch, patch, c, scale, ksize = (
        payload["model"], payload["batch"], payload["patch"], payload["channels"], payload["scale"], payload["kernel"],
    )
    lr = patch // scale
    keys = jax.random.split(jax.random.key(2), 2)
    data = {"input": jax.random.uniform(keys[0], (batch, lr, lr, c)),
            "target": jax.random.uniform(keys[1], (batch, patch, patch, c))}
    if ksize is not None:
        data["kernel"] = _blur_kernels(batch, ksize)
    models = {"fast": ("fast", False), "reference": ("reference", False)}
    if payload["remat"]:
        models["fast_remat"] = ("fast", True)
    impls, states = {}, {}
    tx = optax.adam(1e-4)
    for name, (impl, remat) in models.items():
        model, variables = _build(model_name, {**payload["overrides"], "remat": remat}, c, ksize)
        impls[name] = (impl, model)
        params = variables["params"]
        states[name] = (params, tx.init(params))

    def make(model):
        def loss_fn(params, data):
            args = (data["input"],) if ksize is None else (data["input"], data["kernel"], 1)
            return jnp.mean(jnp.abs(model.apply({"params": params}, *args) - data["target"]))

        def step(state, data):
            params, opt_state = state
            loss, grads = jax.value_and_grad(loss_fn)(params, data)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.jit(step, donate_argnums=0)

    compiled, compile_s, memory = _compile_candidates(make, impls, lambda name: (states[name], data))

    def run(name: str):
        states[name], loss = compiled[name](states[name], data)
        return loss

    # Two warm-up steps from the same parameters: the second loss depends on the first gradients.
    losses = {name: [float(run(name)) for _ in range(2)] for name in compiled}
    rss = {name: common.measure_peak_rss(lambda name=name: run(name)) for name in compiled}
    calls = {name: (lambda name=name: run(name)) for name in compiled}
    timing = common.time_candidates(calls, reps=payload["reps"], min_sample_s=payload["min_sample_s"], warmup=0)
    for name in calls:
        timing[name].update(compile_s=compile_s[name], xla_memory=memory[name], rss_mib=rss[name])
        timing[name]["images_per_s"] = batch / timing[name]["median_s"]
    return {"losses_first_two_steps": losses, "candidates": timing}


def worker(payload: dict) -> dict:
    """Runs one case (``payload['kind']``: 'inference' or 'training') and returns its results."""
    common.pin_threads(payload["threads"])
    result = _inference(payload) if payload["kind"] == "inference" else _training(payload)
    result["jax"] = common.jax_info()
    return result


# --------------------------------------------------------------------------- orchestrator


def _mib(b: int | None) -> float | None:
    return None if b is None else b / 2**20


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=common.DEVICES, default="cpu")
    parser.add_argument("--threads", type=int, choices=(1, 2), default=1, help="CPU threads (cpu device)")
    parser.add_argument("--quick", action="store_true", help="tiny networks, images and batches (smoke test)")
    parser.add_argument("--reps", type=int, help="timed rounds per candidate (default 3)")
    parser.add_argument("--train-batch", type=int, help=f"training batch (0: the config's; default: config on gpu, {CPU_TRAIN_BATCH} on cpu)")
    parser.add_argument("--only", help="comma-separated subset of the case names (inference names, train_<model>)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                        help="computation dtype of the networks (parameters and inputs stay float32)")
    parser.add_argument("--out", type=Path,
                        help="JSON path (default benchmarks/results/models_<device>_<threads>t[_<dtype>].json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}

    threads = args.threads if args.device == "cpu" else None
    reps = args.reps or 3
    env = common.memory_env(common.worker_env(args.device, threads))
    train_batch = args.train_batch
    if train_batch is None:
        train_batch = CPU_TRAIN_BATCH if args.device == "cpu" else 0
    base = {"threads": threads, "reps": reps, "min_sample_s": 0.05}
    precision = {} if args.dtype == "float32" else {"dtype": args.dtype}

    cases: dict[str, dict] = {}
    for name, (model, image, ksize) in INFERENCE.items():
        h, w, c = image
        overrides = QUICK_OVERRIDES[model] if args.quick else {}
        if args.quick:
            h, w = max(12, h // 16), max(12, w // 16)
        cases[name] = {**base, "kind": "inference", "model": model, "image": (h, w, c), "kernel": ksize,
                       "overrides": {**overrides, **precision}}
    for model in TRAINING:
        setup = training_setup(model)
        batch = setup["batch"] if train_batch == 0 else train_batch
        patch = setup["patch"]
        overrides = setup["overrides"]
        if args.quick:
            batch, patch = min(batch, 2), 4 * setup["scale"] * 3
            overrides = {**overrides, **QUICK_OVERRIDES[model]}
        overrides = {**overrides, **precision}
        cases[f"train_{model}"] = {
            **base, "kind": "training", "model": model, "batch": batch, "patch": patch,
            "channels": setup["channels"], "scale": setup["scale"], "kernel": setup["kernel"],
            "overrides": overrides, "config_source": setup["source"], "config_batch": setup["batch"],
            "remat": model == "converse_dncnn",
        }
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(cases))
        if unknown:
            parser.error(f"--only: unknown case(s) {unknown}; choose from {','.join(cases)}")
        cases = {n: cases[n] for n in wanted}

    report = {"benchmark": "models", "device": args.device, "threads": threads, "dtype": args.dtype, "quick": args.quick,
              "reps": reps, "train_batch": train_batch, "machine": common.machine_info(), "cases": {}}
    suffix = f"{args.device}_{threads}t" if threads else args.device
    suffix += "" if args.dtype == "float32" else f"_{args.dtype}"
    out = args.out or common.RESULTS_DIR / f"models_{suffix}.json"
    rows, remat_rows = [], []
    for name, payload in cases.items():
        reply = common.run_worker(Path(__file__), payload, env, timeout_s=7200)
        report["jax"] = reply.pop("jax")
        report["cases"][name] = {"config": {k: v for k, v in payload.items() if k not in base}, **reply}
        cand = reply["candidates"]
        fast, ref = cand["fast"], cand["reference"]
        unit = "img/s" if payload["kind"] == "training" else "ms"
        value = (lambda r: r["images_per_s"]) if payload["kind"] == "training" else (lambda r: common.ms(r["median_s"]))
        shape = (f"{payload['image'][1]}×{payload['image'][0]}×{payload['image'][2]}" if payload["kind"] == "inference"
                 else f"batch {payload['batch']}, {payload['patch']}² HR")
        rows.append([
            name, shape, f"{value(fast):.4g} {unit}", f"{value(ref):.4g} {unit}",
            ref["median_s"] / fast["median_s"],
            ref["median_cpu_s"] / fast["median_cpu_s"] if args.device == "cpu" else None,
            _mib((fast["xla_memory"] or {}).get("peak_estimate")), _mib((ref["xla_memory"] or {}).get("peak_estimate")),
        ])
        if "fast_remat" in cand:
            rem = cand["fast_remat"]
            remat_rows.append([
                name, shape, common.ms(fast["median_s"]), common.ms(rem["median_s"]),
                _mib((fast["xla_memory"] or {}).get("temp")), _mib((rem["xla_memory"] or {}).get("temp")),
                abs(reply["losses_first_two_steps"]["fast"][1] - reply["losses_first_two_steps"]["fast_remat"][1]),
            ])
        common.write_json(out, report)  # after every case: a long run that is cut off keeps its results
        print(f"{name} done", file=sys.stderr, flush=True)

    headers = ["case", "input", "fast", "Alg.1", "speed-up", "speed-up (CPU time)", "fast peak MiB (XLA)",
               "Alg.1 peak MiB (XLA)"]
    table = common.format_table(headers, rows)
    remat_table = common.format_table(
        ["case", "input", "ms", "remat ms", "XLA temp MiB", "remat XLA temp MiB",
         "|Δ loss| step 2"], remat_rows)
    report["table"], report["remat_table"] = table, remat_table
    common.write_json(out, report)
    print(f"models on {args.device} ({', '.join(report['jax']['devices'])}), threads={threads}, "
          f"jax {report['jax']['jax']}, {report['machine']['date_utc']} UTC")
    print(table)
    if remat_rows:
        print("\nRematerialisation (fast operator):")
        print(remat_table)
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
