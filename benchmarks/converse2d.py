"""Benchmark of the reverse-convolution operator against Algorithm 1 and the FFT floor.

    python benchmarks/converse2d.py                 # CPU, 1 thread, all shapes
    python benchmarks/converse2d.py --threads 2 --shapes a,b
    python benchmarks/converse2d.py --device gpu
    python benchmarks/converse2d.py --quick         # smoke test: tiny shapes, few repetitions

Shapes (issue 5), NHWC float32, λ per channel (C,):

(a) B=16, C=128, 64×64, k7, p6, circular, s1 — Converse-DnCNN training;
(b) B=1, C=128, 256×256, k7, p6, circular, s1 — Converse-DnCNN inference;
(c) B=16, C=128, 48×48, k5, p4, replicate, s1 — Converse-SRResNet body;
(d) B=16, C=64, 24×24, k2, p2, replicate, s2 — Converse-SRResNet up-sampler;
(e) B=8, C=64, 96×96, k7 per-sample kernels, p0, circular, s1 — Converse-USRNet data step.

Candidates, timed alternately in one process per shape: ``ours`` (:func:`converse_jax.converse2d`,
padding included), ``reference`` (:func:`converse_jax.converse2d_reference`, the literal
Algorithm 1) and ``floor``: one ``rfft2`` plus one ``irfft2`` over the trailing axes of the
already padded (N, C, Hp, Wp) tensor — the least work any FFT solution must do (scale > 1: the
``rfft2`` of the padded coarse input and, independently, an ``irfft2`` on the fine grid).
``floor_nhwc`` is the same pair of FFTs on the padded tensor in NHWC, i.e. over axes (1, 2), for
which XLA moves the data to and from the FFT layout itself — the floor of an FFT solution with
NHWC input and output.
``fwd``: the output; ``fwd+bwd``: output and gradients of ``sum(out·g)`` w.r.t. the input, the
kernel and λ (the floor: w.r.t. its inputs, through the same FFTs). Ratios are to the floor of
the same mode, from wall-clock medians and, on the CPU, also from medians of the process CPU
time per call (the robust figure on a shared machine: a pinned one-thread worker's CPU time is
its work, its wall time also counts the time other processes held the core; ``CPU/wall`` shows
how much of the core it got). Each shape runs in ``--runs`` fresh worker processes (default 3):
whole processes differ (by up to ~25% here, in page faults and memory placement), so ratios are
taken within a process and the table gives their median and range over the processes
(:func:`benchmarks.common.merge_runs`). The JSON goes to
``benchmarks/results/converse2d_<device>_<threads>t.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402


@dataclass(frozen=True)
class Shape:
    """One operator configuration of the benchmark."""

    name: str
    what: str
    batch: int
    channels: int
    height: int
    width: int
    kernel: int
    padding: int
    padding_mode: str
    scale: int
    per_sample_kernel: bool = False


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("a", "DnCNN training", 16, 128, 64, 64, 7, 6, "circular", 1),
        Shape("b", "DnCNN inference", 1, 128, 256, 256, 7, 6, "circular", 1),
        Shape("c", "SRResNet body", 16, 128, 48, 48, 5, 4, "replicate", 1),
        Shape("d", "SRResNet up-sampler", 16, 64, 24, 24, 2, 2, "replicate", 2),
        Shape("e", "USRNet data step", 8, 64, 96, 96, 7, 0, "circular", 1, True),
    )
}
MODES = ("fwd", "fwd+bwd")
CANDIDATES = ("ours", "reference", "floor", "floor_nhwc")


def quick_shape(shape: Shape) -> Shape:
    """A tiny version of ``shape`` for smoke tests (same kernel, padding, mode and scale)."""
    return replace(
        shape,
        batch=min(shape.batch, 2),
        channels=4,
        height=max(12, shape.height // 8),
        width=max(10, shape.width // 8),
    )


# --------------------------------------------------------------------------- worker side


def _operator_inputs(shape: Shape, keys) -> tuple:
    """(x, kernel, λ) of ``shape`` from two PRNG keys: NHWC input, normalised positive kernel
    ((k, k, C) or per sample (N, k, k, C)), λ (C,) as the layers make it (sigmoid(b − 9) + eps)."""
    import jax

    x = jax.random.normal(keys[0], (shape.batch, shape.height, shape.width, shape.channels))
    kshape = (shape.kernel, shape.kernel, shape.channels)
    if shape.per_sample_kernel:
        kshape = (shape.batch, *kshape)
    kernel = jax.nn.softmax(jax.random.normal(keys[1], kshape).reshape(*kshape[:-3], -1, shape.channels), axis=-2)
    lam = jax.nn.sigmoid(jax.random.normal(keys[2], (shape.channels,)) - 9.0) + 1e-5
    return x, kernel.reshape(kshape), lam


def _candidates(shape: Shape, mode: str):
    """(zero-arg callables, compile seconds, XLA memory) of the three candidates."""
    import jax
    import jax.numpy as jnp

    from converse_jax import converse2d, converse2d_reference

    s, p = shape.scale, shape.padding
    keys = jax.random.split(jax.random.key(0), 5)
    x, kernel, lam = _operator_inputs(shape, keys)
    out_shape = (shape.batch, s * shape.height, s * shape.width, shape.channels)
    g = jax.random.normal(keys[3], out_shape)

    hp, wp = shape.height + 2 * p, shape.width + 2 * p
    yp = jax.random.normal(keys[4], (shape.batch, shape.channels, hp, wp))
    fine = (s * hp, s * wp)
    g_floor = jax.random.normal(keys[3], (shape.batch, shape.channels, *fine))
    floor_args = (yp,) if s == 1 else (yp, jnp.fft.rfft2(g_floor))
    to_nhwc = lambda a: jnp.transpose(a, (0, 2, 3, 1))  # noqa: E731
    nhwc_args = tuple(to_nhwc(a) for a in floor_args)

    def op(fn):
        return lambda x, k, lam: fn(x, k, lam, scale=s, padding=p, padding_mode=shape.padding_mode)

    def floor(yp, *zf):
        fy = jnp.fft.rfft2(yp)
        if s == 1:
            return jnp.fft.irfft2(fy, s=fine)
        return fy, jnp.fft.irfft2(zf[0], s=fine)

    def fwd_bwd(fn):
        def run(*args_and_cotangent):
            *args, ct = args_and_cotangent
            out, vjp = jax.vjp(fn, *args)
            return out, vjp(ct)

        return jax.jit(run)

    def floor_nhwc(yp, *zf):
        fy = jnp.fft.rfft2(yp, axes=(1, 2))
        if s == 1:
            return jnp.fft.irfft2(fy, s=fine, axes=(1, 2))
        return fy, jnp.fft.irfft2(zf[0], s=fine, axes=(1, 2))

    fns = {"ours": op(converse2d), "reference": op(converse2d_reference), "floor": floor, "floor_nhwc": floor_nhwc}
    args = {"ours": (x, kernel, lam), "reference": (x, kernel, lam), "floor": floor_args, "floor_nhwc": nhwc_args}
    if mode == "fwd":
        fns = {name: jax.jit(fn) for name, fn in fns.items()}
    else:
        floor_ct = g_floor if s == 1 else (jnp.fft.rfft2(yp), g_floor)
        nhwc_ct = to_nhwc(g_floor) if s == 1 else (to_nhwc(floor_ct[0]), to_nhwc(g_floor))
        fns = {name: fwd_bwd(fn) for name, fn in fns.items()}
        args = {"ours": (*args["ours"], g), "reference": (*args["reference"], g), "floor": (*floor_args, floor_ct),
                "floor_nhwc": (*nhwc_args, nhwc_ct)}
    calls, compile_s, memory = {}, {}, {}
    for name in CANDIDATES:
        compiled, compile_s[name] = common.compile_timed(fns[name], *args[name])
        memory[name] = common.xla_memory(compiled)
        calls[name] = partial(compiled, *args[name])
    return calls, compile_s, memory


STAGES = ("layout_in", "rfft2", "product", "irfft2", "layout_out")


def _stages(shape: Shape) -> dict:
    """Zero-arg callables timing each stage of our scale-1 forward pass on its own, and the whole.

    The stages are the operator's own private steps (``converse_jax.ops.converse2d``): NHWC ->
    padded NCHW, ``rfft2``, the product with the transfer function M (M computed in the same
    loop), ``irfft2``, crop and NCHW -> NHWC. Each is compiled separately, so their sum can differ
    from the whole: XLA may fuse across a boundary, and one executable places its buffers
    differently from several.
    """
    import importlib

    import jax
    import jax.numpy as jnp

    from converse_jax import converse2d
    from converse_jax.ops.validation import check_args

    impl = importlib.import_module("converse_jax.ops.converse2d")
    s, p, mode = shape.scale, shape.padding, shape.padding_mode
    x, kernel, lam = _operator_inputs(shape, jax.random.split(jax.random.key(0), 3))
    g = check_args(x, kernel, lam, s, p, mode, None)
    k4 = kernel if shape.per_sample_kernel else kernel[None]
    lam4 = impl._lam_nchw(lam, g, x.dtype)
    yp = impl._to_nchw_padded(x, p, mode)
    fy = jnp.fft.rfft2(yp)
    fns = {
        "layout_in": (lambda x: impl._to_nchw_padded(x, p, mode), (x,)),
        "rfft2": (jnp.fft.rfft2, (yp,)),
        "product": (lambda fy, k, lam: fy * impl._scale1_transfer(k, lam, g), (fy, k4, lam4)),
        "irfft2": (lambda f: jnp.fft.irfft2(f, s=(g.hp, g.wp)), (fy,)),
        "layout_out": (lambda y: impl._from_nchw_cropped(y, p), (yp,)),
        "ours": (lambda x, k, lam: converse2d(x, k, lam, padding=p, padding_mode=mode), (x, kernel, lam)),
    }
    calls = {}
    for name, (fn, args) in fns.items():
        compiled, _ = common.compile_timed(jax.jit(fn), *args)
        calls[name] = partial(compiled, *args)
    return calls


def worker(payload: dict) -> dict:
    """Times every mode of one shape; returns {mode: {candidate: stats}} and JAX info."""
    common.pin_threads(payload["threads"])
    common.apply_malloc(payload["malloc"])
    shape = Shape(**payload["shape"])
    results = {}
    for mode in MODES:
        calls, compile_s, memory = _candidates(shape, mode)
        timing = common.time_candidates(calls, reps=payload["reps"], min_sample_s=payload["min_sample_s"])
        for name in CANDIDATES:
            timing[name]["compile_s"] = compile_s[name]
            timing[name]["xla_memory"] = memory[name]
        results[mode] = timing
    reply = {"jax": common.jax_info(), "results": results}
    if shape.scale == 1:
        reply["stages"] = common.time_candidates(_stages(shape), reps=payload["reps"], min_sample_s=payload["min_sample_s"])
    return reply


# --------------------------------------------------------------------------- orchestrator


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=common.DEVICES, default="cpu")
    parser.add_argument("--threads", type=int, choices=(1, 2), default=1, help="CPU threads (cpu device)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset of a,b,c,d,e")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 3 repetitions (smoke test)")
    common.add_malloc_flag(parser, default="default")
    parser.add_argument("--reps", type=int, help="timed rounds per candidate (default 7; quick 3)")
    parser.add_argument("--runs", type=int, help="worker processes per shape, ratios are medians over them (default 3; quick 1)")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/converse2d_<device>_<threads>t.json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}

    names = [n.strip() for n in args.shapes.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SHAPES))
    if unknown or not names:
        parser.error(f"--shapes: unknown shape(s) {unknown}; choose from {','.join(SHAPES)}")
    threads = args.threads if args.device == "cpu" else None
    reps = args.reps if args.reps is not None else (3 if args.quick else 7)
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    if reps < 1 or runs < 1:
        parser.error(f"--reps and --runs must be >= 1, got {reps} and {runs}")
    env = common.worker_env(args.device, threads)
    report = {
        "benchmark": "converse2d",
        "device": args.device,
        "threads": threads,
        "quick": args.quick,
        "malloc": args.malloc,
        "reps": reps,
        "runs": runs,
        "machine": common.machine_info(),
        "shapes": {},
    }
    suffix = f"{args.device}_{threads}t" if threads else args.device
    suffix += "_reusemalloc" if args.malloc == "reuse" else ""
    out = args.out or common.RESULTS_DIR / f"converse2d_{suffix}.json"
    rows, stage_rows = [], []
    for name in names:
        shape = quick_shape(SHAPES[name]) if args.quick else SHAPES[name]
        payload = {"shape": asdict(shape), "threads": threads, "malloc": args.malloc, "reps": reps, "min_sample_s": 0.01 if args.quick else 0.1}
        replies = [common.run_worker(Path(__file__), payload, env, timeout_s=3600) for _ in range(runs)]
        report["jax"] = replies[0]["jax"]
        entry = {"config": asdict(shape), "runs": runs, "modes": {}}
        for mode in MODES:
            per_run = [reply["results"][mode] for reply in replies]
            merged = common.merge_runs(per_run, "floor")
            entry["modes"][mode] = merged["stats"]
            entry.setdefault("ratio_to_floor", {})[mode] = merged["ratio"]
            entry.setdefault("ratio_range_to_floor", {})[mode] = merged["ratio_range"]
            nhwc = common.median_ratio(per_run, "ours", "floor_nhwc")
            alg1 = common.median_ratio(per_run, "reference", "ours")
            cpu_ratio = None
            if args.device == "cpu":
                entry.setdefault("cpu_time_ratio_to_floor", {})[mode] = merged["cpu_ratio"]
                cpu_ratio = merged["cpu_ratio"]["ours"]
            res = merged["stats"]
            lo, hi = merged["ratio_range"]["ours"]
            rows.append(
                [
                    f"({name}) {shape.what}",
                    mode,
                    common.ms(res["ours"]["median_s"]),
                    common.ms(res["reference"]["median_s"]),
                    common.ms(res["floor"]["median_s"]),
                    merged["ratio"]["ours"],
                    f"{lo:.3g}–{hi:.3g}",
                    cpu_ratio,
                    nhwc,
                    alg1,
                    res["ours"]["cpu_per_wall"] if args.device == "cpu" else None,
                ]
            )
        if "stages" in replies[0]:
            staged = common.merge_runs([reply["stages"] for reply in replies], "ours")
            entry["stages_fwd"] = {
                k: {"median_s": v["median_s"], "fraction_of_ours": staged["ratio"][k]} for k, v in staged["stats"].items()
            }
            stage_rows.append(
                [f"({name})", *(common.ms(staged["stats"][k]["median_s"]) for k in (*STAGES, "ours")),
                 sum(staged["ratio"][k] for k in STAGES)]
            )
        report["shapes"][name] = entry
        common.write_json(out, report)  # after every shape: a run that is cut off keeps its results
        print(f"shape {name} done", file=sys.stderr, flush=True)

    headers = ["shape", "mode", "ours ms", "Alg.1 ms", "floor ms", "ours/floor", "ours/floor range",
               "ours/floor (CPU time)", "ours/floor NHWC", "Alg.1/ours", "CPU/wall"]
    table = common.format_table(headers, rows)
    report["table"] = table
    if stage_rows:
        report["stages_table"] = common.format_table(
            ["shape", *(f"{k} ms" for k in STAGES), "ours ms", "stages/ours"], stage_rows
        )
    common.write_json(out, report)
    print(
        f"converse2d on {args.device} ({', '.join(report['jax']['devices'])}), threads={threads}, "
        f"malloc={args.malloc}, jax {report['jax']['jax']}, {report['machine']['date_utc']} UTC"
    )
    print(table)
    if stage_rows:
        print(f"\nStages of our scale-1 forward pass, each compiled and timed on its own:\n{report['stages_table']}")
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
