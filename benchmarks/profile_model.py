"""Where the time goes in Converse-DnCNN (or Converse-SRResNet, ConverseNet) on the CPU, by kind
of work, from XLA's own profile.

    python benchmarks/profile_model.py                 # inference 256×256 + training step, 1 thread
    python benchmarks/profile_model.py --kind training --batch 8 --patch 40
    python benchmarks/profile_model.py --network conversenet --kind training --batch 4 --patch 96
    python benchmarks/profile_model.py --network converse_srresnet --image 128 --patch 96
    python benchmarks/profile_model.py --quick         # tiny network (smoke test)

A worker process (pinned to ``--threads`` CPUs, see :mod:`benchmarks.common`) compiles the
network's inference (batch 1, ``--image``² gray, RGB for Converse-SRResNet and ConverseNet) or one
training step (L1 loss, gradient, Adam; batch ``--batch`` of ``--patch``² target patches, inputs
``--patch``/4 for the ×4 Converse-SRResNet), runs it under ``jax.profiler.trace`` and reads the
trace back (``jax.profiler.ProfileData``): the CPU runtime records one event per executed HLO
instruction (a fusion, an FFT, a library matmul), named as in the compiled module. Each top-level
instruction of the optimised HLO is put in one kind of work from its opcode, its fused body and
the source location XLA keeps (``op_name`` carries the Flax module path, e.g.
``blocks_3/spatial/...``):

* ``FFT`` — the rfft2/irfft2 of the reverse convolutions (and their transposes); the solves are
  the blocks' ``spatial`` layers and Converse-SRResNet's ×2 up-samplers ``ups_i``;
* ``transfer function`` — the reverse convolution's work that does not touch the activations
  (the kernel's spectrum and M, for the whole batch) and the matmuls of its gradient;
* ``transfer fn gradient`` — in the backward pass, the reductions over the batch of products of
  spectra that give the gradient of the transfer function (then of the kernel and λ);
* ``spectral product`` — the rest of the solve's elementwise work on the spectra;
* ``layout + pad`` — transposes NHWC↔NCHW, padding gathers and crops (pure data movement);
* ``layout + GELU`` — fusions that do both (XLA fuses the exact GELU into the move next to it);
* ``1×1 conv`` — the matmuls of the 1×1 convolutions (forward and backward);
* ``LayerNorm``, ``GELU`` — the rest attributed to those modules / erf fusions;
* ``optimizer + loss`` — work outside the network (Adam update, L1 loss);
* ``other`` — bias and residual adds and anything unmatched.

Times are per call, summed over the events of the instruction (all threads; with one thread
that is the busy time), next to the wall time of the traced calls. JSON:
``benchmarks/results/profile_NETWORK_cpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

# network -> (its Flax class name in XLA's op_name, image channels, upscale, --quick overrides)
NETWORKS = {
    "converse_dncnn": ("ConverseDnCNN", 1, 1, {"features": 4, "num_blocks": 2}),
    "converse_srresnet": ("ConverseSRResNet", 3, 4, {"features": 4, "num_blocks": 1}),
    "conversenet": ("ConverseNet", 3, 1, {"features": 4, "num_blocks": 1, "num_iterations": 2}),
}
_SOLVE = re.compile(r"/(spatial|ups_\d+)/")

KINDS = ("FFT", "transfer function", "transfer fn gradient", "spectral product", "layout + pad", "layout + GELU", "1×1 conv",
         "LayerNorm", "GELU", "optimizer + loss", "other")
_INST = re.compile(r"^\s*(?:ROOT )?%(\S+) = \S+(?: \S+)*? (\w[\w-]*)\((.*)$")
_MOVES = ("transpose(", "gather(", "pad(", "slice(", "concatenate(", "copy(", "select(")


# --------------------------------------------------------------------------- HLO parsing


def parse_hlo(text: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """Module name and the ENTRY computation's instructions of an optimised HLO text.

    Returns ``(module, {name: {"opcode", "op_name", "operands", "body"}})``; ``body`` is the
    text of the computation a fusion calls ('' otherwise).
    """
    module = re.search(r"^HloModule (\S+?),?\s", text, re.M)[1]
    comps: dict[str, str] = {}
    for m in re.finditer(r"^%?(\S+) \(.*?\) -> .*?\{\n(.*?)\n\}", text, re.M | re.S):
        comps[m[1]] = m[2]
    entry = re.search(r"^ENTRY .*?\{\n(.*?)\n\}", text, re.M | re.S)[1]
    insts = {}
    for line in entry.splitlines():
        m = _INST.match(line)
        if not m:
            continue
        name, opcode, rest = m[1], m[2], m[3]
        called = re.search(r"calls=%(\S+?)[,\s]", rest + " ")
        op_name = re.search(r'op_name="([^"]*)"', rest)
        insts[name] = {
            "opcode": opcode,
            "op_name": op_name[1] if op_name else "",
            "operands": re.findall(r"%([\w.\-]+)", rest.split("calls=")[0].split("metadata=")[0]),
            "body": comps.get(called[1], "") if called else "",
        }
    return module, insts


def data_dependent(insts: dict[str, dict[str, Any]], data_params: tuple[str, ...]) -> set[str]:
    """Names of the instructions that depend on a parameter whose ``op_name`` is in
    ``data_params`` (the activations), following operands in program order."""
    dep: set[str] = set()
    for name, inst in insts.items():
        if (inst["opcode"] == "parameter" and inst["op_name"] in data_params) or any(
            o in dep for o in inst["operands"]
        ):
            dep.add(name)
    return dep


def classify(inst: dict[str, Any], depends_on_data: bool, model: str) -> str:
    """One of :data:`KINDS` for an HLO instruction (see the module docstring)."""
    opcode, op_name, body = inst["opcode"], inst["op_name"], inst["body"]
    text = body or f"{opcode}("
    moves = any(k in text for k in _MOVES) or opcode in ("transpose", "copy", "pad", "gather", "slice")
    has_dot = "dot(" in text or "dot_general" in op_name or "convolution(" in text
    if opcode == "fft":
        return "FFT"
    if f"({model})" not in op_name and f"{model}/" not in op_name:
        return "optimizer + loss" if op_name else "other"
    if _SOLVE.search(op_name):
        if not depends_on_data or has_dot:
            return "transfer function"
        if "reduce(" in text:
            return "transfer fn gradient"
        if moves and "erf" in text:
            return "layout + GELU"
        arithmetic = any(k in text for k in ("multiply(", "divide(", "add("))
        return "layout + pad" if moves and not arithmetic else "spectral product"
    if has_dot and re.search(r"/(expand\d|project\d|head|tail)/", op_name):
        return "1×1 conv"
    if "/norm1/" in op_name or "/norm2/" in op_name:
        return "LayerNorm"
    if moves:
        return "layout + GELU" if "erf" in text else "layout + pad"
    if "erf" in text:
        return "GELU"
    return "other"


# --------------------------------------------------------------------------- worker side


def trace_events(fns, calls: int, modules) -> dict[str, dict[str, list[float]]]:
    """Runs the zero-argument callables ``fns`` ``calls`` times each, in turn, under the
    profiler; returns, per module name of ``modules`` and per HLO instruction of it, the seconds
    it took in each call (its events of one call summed). Also the key ``"wall_s"``: per callable
    index, the wall seconds per call of the traced calls."""
    import glob
    import tempfile
    import time

    import jax
    from jax.profiler import ProfileData

    wall = [0.0] * len(fns)
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(calls):
                for i, fn in enumerate(fns):
                    t0 = time.perf_counter()
                    common.block(fn())
                    wall[i] += (time.perf_counter() - t0) / calls
        (path,) = glob.glob(f"{tmp}/**/*.xplane.pb", recursive=True)
        data = ProfileData.from_file(path)
    events: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in modules}
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                stats = dict(event.stats)
                if stats.get("hlo_module") in events and "hlo_op" in stats:
                    events[stats["hlo_module"]][stats["hlo_op"]].append(event.duration_ns / 1e9)
    out: dict[str, dict[str, list[float]]] = {"wall_s": dict(enumerate(wall))}
    for module, per_inst in events.items():
        out[module] = {}
        for name, durations in per_inst.items():
            per = max(1, len(durations) // calls)  # events of one instruction in one call
            out[module][name] = [sum(durations[i:i + per]) for i in range(0, len(durations) - per + 1, per)]
    return out


def _trace_times(fn, calls: int, module: str) -> tuple[dict[str, float], float]:
    """Runs ``fn`` ``calls`` times under the profiler; returns (seconds per call per HLO
    instruction of ``module``: the median over the calls of its summed events, robust to a
    preemption on a shared machine; wall seconds per call)."""
    events = trace_events([fn], calls, [module])
    return {name: statistics.median(sums) for name, sums in events[module].items()}, events["wall_s"][0]


def worker(payload: dict) -> dict:
    """Compiles and profiles one case; returns per-kind times and the top instructions."""
    common.pin_threads(payload["threads"])
    common.apply_malloc(payload["malloc"])
    import jax
    import jax.numpy as jnp
    import optax

    from converse_jax.models import get_model

    model = get_model(payload["network"], **payload["overrides"])
    class_name, c, scale, _ = NETWORKS[payload["network"]]
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, c)))["params"]
    if payload["kind"] == "inference":
        s = payload["image"]
        x = jax.random.uniform(jax.random.key(1), (1, s, s, c))
        compiled = jax.jit(lambda params, x: model.apply({"params": params}, x)).lower(params, x).compile()
        fn, data_params = (lambda: compiled(params, x)), ("x",)
    else:
        b, p = payload["batch"], payload["patch"]
        x = jax.random.uniform(jax.random.key(1), (b, p // scale, p // scale, c))
        target = jax.random.uniform(jax.random.key(2), (b, p, p, c))
        tx = optax.adam(1e-4)

        def step(state, x, target):
            params, opt = state
            loss, g = jax.value_and_grad(lambda q: jnp.mean(jnp.abs(model.apply({"params": q}, x) - target)))(params)
            updates, opt = tx.update(g, opt, params)
            return (optax.apply_updates(params, updates), opt), loss

        state = [(params, tx.init(params))]
        compiled = jax.jit(step, donate_argnums=0).lower(state[0], x, target).compile()

        def fn():
            state[0], loss = compiled(state[0], x, target)
            return loss

        data_params = ("x", "target")
    module, insts = parse_hlo(compiled.as_text())
    dep = data_dependent(insts, data_params)
    for _ in range(2):
        common.block(fn())
    times, wall = _trace_times(fn, payload["calls"], module)
    by_kind: dict[str, float] = dict.fromkeys(KINDS, 0.0)
    top = []
    for name, secs in times.items():
        inst = insts.get(name)
        kind = classify(inst, name in dep, class_name) if inst else "other"
        by_kind[kind] += secs
        top.append((secs, name, kind, inst["op_name"] if inst else ""))
    top.sort(reverse=True)
    return {"module": module, "wall_s": wall, "busy_s": sum(by_kind.values()), "by_kind_s": by_kind,
            "top": [{"s": s, "hlo": n, "kind": k, "op_name": o} for s, n, k, o in top[:25]],
            "jax": common.jax_info()}


# --------------------------------------------------------------------------- orchestrator


def table(results: dict[str, dict]) -> str:
    """Markdown table: per kind, ms per call and share of the busy time, one column pair per case."""
    headers = ["kind of work"]
    for case in results:
        headers += [f"{case} ms", f"{case} %"]
    rows = []
    for kind in KINDS:
        row: list[Any] = [kind]
        for res in results.values():
            s = res["by_kind_s"][kind]
            row += [common.ms(s), f"{100 * s / res['busy_s']:.1f}"]
        rows.append(row)
    total: list[Any] = ["total busy (wall)"]
    for res in results.values():
        total += [f"{common.ms(res['busy_s']):.4g} ({common.ms(res['wall_s']):.4g})", "100"]
    return common.format_table(headers, rows + [total])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--network", choices=tuple(NETWORKS), default="converse_dncnn")
    parser.add_argument("--kind", choices=("inference", "training", "both"), default="both")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--image", type=int, default=256, help="inference image side (default 256)")
    parser.add_argument("--batch", type=int, default=8, help="training batch (default 8)")
    parser.add_argument("--patch", type=int, default=40, help="training patch side (default 40)")
    common.add_malloc_flag(parser)
    parser.add_argument("--calls", type=int, default=5, help="traced calls (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny network and inputs (smoke test)")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/profile_NETWORK_cpu.json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}
    for flag in ("threads", "image", "batch", "patch", "calls"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be positive")
    overrides = NETWORKS[args.network][3] if args.quick else {}
    image, batch, patch = (24, 2, 16) if args.quick else (args.image, args.batch, args.patch)
    kinds = ("inference", "training") if args.kind == "both" else (args.kind,)
    out = args.out or common.RESULTS_DIR / f"profile_{args.network}_cpu.json"
    env = common.worker_env("cpu", args.threads)
    report = {"benchmark": "profile_model", "network": args.network, "threads": args.threads, "malloc": args.malloc,
              "quick": args.quick, "machine": common.machine_info(), "cases": {}}
    for kind in kinds:
        payload = {"network": args.network, "kind": kind, "threads": args.threads, "malloc": args.malloc,
                   "overrides": overrides, "image": image, "batch": batch, "patch": patch, "calls": args.calls}
        reply = common.run_worker(Path(__file__), payload, env, timeout_s=7200)
        report["jax"] = reply.pop("jax")
        label = f"inference {image}²" if kind == "inference" else f"train b{batch} {patch}²"
        report["cases"][label] = {"config": payload, **reply}
    report["table"] = table(report["cases"])
    common.write_json(out, report)
    print(f"{args.network} on CPU, {args.threads} thread(s), jax {report['jax']['jax']}, "
          f"{report['machine']['date_utc']} UTC")
    print(report["table"])
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
