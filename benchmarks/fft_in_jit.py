"""Does XLA's CPU FFT lose speed inside a larger program? The reverse convolution's FFTs, alone and
produced by (or feeding) other operations in the same executable, on the operator's shapes.

    python benchmarks/fft_in_jit.py                 # 1 thread, Converse-DnCNN's two shapes
    python benchmarks/fft_in_jit.py --reps 15       # more rounds on a busy machine
    python benchmarks/fft_in_jit.py --quick         # tiny shapes (smoke test)

Why: jax-ml/jax#39081 reports a large batched CPU FFT ~20× slower when its input is produced by
another operation in the same ``jax.jit`` executable, and a profile of Converse-DnCNN's training
step showed its FFTs longer than the same FFTs compiled alone. If that held here, the fix would
lie in how the operator hands data to the FFT, not in fewer FLOPs.

Two measurements per shape, in one worker process pinned to ``--threads`` CPUs:

1. **Programs** (:func:`benchmarks.common.time_candidates`: compiled ahead of time, alternating
   order, medians of wall and CPU time). Each FFT alone on a parameter buffer, each producer or
   consumer alone, and the two in one executable; ``extra`` = combined − (FFT alone + the other
   op alone), the cost of putting them together (≈ 0 when nothing is lost). Variants: the
   operator's own layout move (NHWC → NCHW transpose + circular padding) feeding ``rfft2``,
   with and without ``lax.optimization_barrier`` between them; an elementwise producer; the
   complex ``fft2`` of jax#39081's reproducer (input scaled, then multiplied by a kernel);
   ``irfft2`` fed by the spectral product and feeding the crop + move back to NHWC; the whole
   scale-1 forward against the sum of its parts; batch and channel axes swapped, (C, N, H, W).
   And the move itself fed by a block's GELU, fused (XLA puts the GELU inside the transpose's
   loop) or kept apart by a conditional on the data whose two branches are the identity (a
   fusion boundary that ``optimization_barrier`` is not on the CPU).
2. **Inside a training step**: one :class:`~converse_jax.nn.converse.ConverseBlock` (C/2
   features, k7, p6 circular as in Converse-DnCNN), value and gradient of an L1 loss, traced
   with ``jax.profiler`` alternately with ``rfft2`` and ``irfft2`` compiled alone on the same
   shapes; per FFT instruction of the step the minimum and median over the traced calls of its
   event's duration (wall time of that instruction; on a shared machine the minimum is the
   better estimate of its own cost), next to the standalone FFTs'.

Shapes: the padded grids of Converse-DnCNN's blocks (128 channels, padding 6): a training batch
of 8 patches of 40² (grid 52²) and one 256² image (grid 268²). JSON:
``benchmarks/results/fft_in_jit_cpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

# case -> (N, H, W, C, padding): the activations entering Converse-DnCNN's solves.
SHAPES = {"train b8 40²": (8, 40, 40, 128, 6), "inference 256²": (1, 256, 256, 128, 6)}
QUICK_SHAPES = {"quick": (2, 8, 8, 4, 2)}
# combined program -> the programs it is made of, each compiled alone
PAIRS = {
    "rfft2(move+pad)": ("rfft2", "move+pad"),
    "rfft2(barrier(move+pad))": ("rfft2", "move+pad"),
    "rfft2(2·y+1)": ("rfft2", "2·y+1"),
    "fft2(2·z)·k": ("fft2", "2·z, ·k"),
    "irfft2(Y·M)": ("irfft2", "Y·M"),
    "crop+move(irfft2)": ("irfft2", "crop+move"),
    "rfft2 on (C,N,H,W)": ("rfft2",),
    "move+pad(gelu)": ("gelu", "move+pad"),
    "move+pad(cond(gelu))": ("gelu", "move+pad"),
    "whole forward": ("move+pad", "rfft2", "Y·M", "irfft2", "crop+move"),
}


def _programs(shape: tuple[int, ...]) -> dict:
    """{name: compiled zero-argument call} for :data:`PAIRS`, their parts and the whole forward."""
    import importlib

    import jax
    import jax.numpy as jnp

    from converse_jax.nn.converse import gelu

    op = importlib.import_module("converse_jax.ops.converse2d")  # the module, not the function
    n, h, w, c, p = shape
    hp, wp = h + 2 * p, w + 2 * p
    keys = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(keys[0], (n, h, w, c))
    yp = op._to_nchw_padded(x, p, "circular")
    spec = jnp.fft.rfft2(yp)
    m = jax.lax.complex(*jax.random.normal(keys[1], (2, 1, c, hp, wp // 2 + 1)))
    z = yp.astype(jnp.complex64)
    k = jax.lax.complex(*jax.random.normal(keys[2], (2, hp, wp)))
    move_pad = lambda a: op._to_nchw_padded(a, p, "circular")  # noqa: E731
    # a fusion boundary: a conditional on the data, both branches the identity (the second as t·1:
    # XLA removes a conditional whose two branches are the same computation)
    cond = lambda a: jax.lax.cond(a[0, 0, 0, 0] == a[0, 0, 0, 0], lambda t: t, lambda t: t * 1, a)  # noqa: E731
    irfft2 = lambda a: jnp.fft.irfft2(a, s=(hp, wp))  # noqa: E731
    crop_move = lambda a: op._from_nchw_cropped(a, p)  # noqa: E731
    fns = {
        "rfft2": (jnp.fft.rfft2, yp),
        "irfft2": (irfft2, spec),
        "fft2": (jnp.fft.fft2, z),
        "move+pad": (move_pad, x),
        "2·y+1": (lambda a: 2.0 * a + 1.0, yp),
        "2·z, ·k": (lambda a: (2.0 * a) * k, z),
        "Y·M": (lambda a: a * m, spec),
        "crop+move": (crop_move, yp),
        "rfft2(move+pad)": (lambda a: jnp.fft.rfft2(move_pad(a)), x),
        "rfft2(barrier(move+pad))": (lambda a: jnp.fft.rfft2(jax.lax.optimization_barrier(move_pad(a))), x),
        "rfft2(2·y+1)": (lambda a: jnp.fft.rfft2(2.0 * a + 1.0), yp),
        "fft2(2·z)·k": (lambda a: jnp.fft.fft2(2.0 * a) * k, z),
        "irfft2(Y·M)": (lambda a: irfft2(a * m), spec),
        "crop+move(irfft2)": (lambda a: crop_move(irfft2(a)), spec),
        "rfft2 on (C,N,H,W)": (jnp.fft.rfft2, jnp.swapaxes(yp, 0, 1) + 0.0),
        "gelu": (gelu, x),
        "move+pad(gelu)": (lambda a: move_pad(gelu(a)), x),
        "move+pad(cond(gelu))": (lambda a: move_pad(cond(gelu(a))), x),
        "whole forward": (lambda a: crop_move(irfft2(jnp.fft.rfft2(move_pad(a)) * m)), x),
    }
    calls = {}
    for name, (fn, arg) in fns.items():
        compiled = jax.jit(fn).lower(arg).compile()
        calls[name] = lambda compiled=compiled, arg=arg: compiled(arg)
    return calls


def _extras(timing: dict, key: str) -> dict:
    """combined − the sum of its parts (seconds per call), per entry of :data:`PAIRS`."""
    t = {name: stats[key] for name, stats in timing.items()}
    return {name: t[name] - sum(t[part] for part in parts) for name, parts in PAIRS.items()}


def _in_step(shape: tuple[int, ...], calls: int) -> dict:
    """The FFT instructions of a ConverseBlock's training step against the same FFTs alone, from
    XLA's profiler events: {"step RFFT fft.6", ..., "alone IRFFT": {"min_s", "median_s",
    "op_name"}}, seconds per call."""
    import jax
    import jax.numpy as jnp

    from benchmarks.profile_model import parse_hlo, trace_events
    from converse_jax.nn.converse import ConverseBlock

    n, h, w, c, p = shape
    keys = jax.random.split(jax.random.key(1), 2)
    x = jax.random.normal(keys[0], (n, h, w, c // 2))
    target = jax.random.normal(keys[1], x.shape)
    block = ConverseBlock(c // 2, kernel_size=7, padding=p, padding_mode="circular")
    params = block.init(jax.random.key(2), x)

    def block_step(params, x):
        return jax.grad(lambda q, x: jnp.mean(jnp.abs(block.apply(q, x) - target)), argnums=(0, 1))(params, x)

    def rfft2_alone(a):
        return jnp.fft.rfft2(a)

    def irfft2_alone(a):
        return jnp.fft.irfft2(a, s=(h + 2 * p, w + 2 * p))

    grid = jnp.ones((n, c, h + 2 * p, w + 2 * p))
    programs = [(block_step, (params, x)), (rfft2_alone, (grid,)), (irfft2_alone, (jnp.fft.rfft2(grid),))]
    compiled = [jax.jit(fn).lower(*args).compile() for fn, args in programs]
    fns = [lambda cc=cc, args=args: cc(*args) for cc, (_, args) in zip(compiled, programs)]
    texts = [cc.as_text() for cc in compiled]
    modules = [parse_hlo(text) for text in texts]
    events = trace_events(fns, calls, [module for module, _ in modules])
    out = {}
    for text, (module, insts), label in zip(texts, modules, ("step", "alone", "alone")):
        for name, durations in events[module].items():
            if name in insts and insts[name]["opcode"] == "fft":
                kind = re.search(rf"%{re.escape(name)} = .*?fft_type=(\w+)", text)[1]
                out[f"{label} {kind} {name}" if label == "step" else f"{label} {kind}"] = {
                    "min_s": min(durations), "median_s": statistics.median(durations), "op_name": insts[name]["op_name"]}
    return out


def worker(payload: dict) -> dict:
    """Both measurements at one shape."""
    common.pin_threads(payload["threads"])
    common.apply_malloc(payload["malloc"])
    shape = tuple(payload["shape"])
    timing = common.time_candidates(_programs(shape), reps=payload["reps"], min_sample_s=payload["min_sample_s"])
    return {"timing": timing, "extra_s": _extras(timing, "median_s"), "extra_cpu_s": _extras(timing, "median_cpu_s"),
            "in_step": _in_step(shape, max(3, payload["reps"])), "jax": common.jax_info()}


def tables(shapes: dict) -> tuple[str, str]:
    """Markdown: the programs (alone, combined, extra) and the FFTs inside the step vs alone."""
    rows = []
    for case, res in shapes.items():
        t = {k: v["median_cpu_s"] for k, v in res["timing"].items()}
        for name, parts in PAIRS.items():
            rows.append([case, name, " + ".join(f"{common.ms(t[part]):.3g}" for part in parts),
                         f"{common.ms(t[name]):.3g}", f"{common.ms(res['extra_cpu_s'][name]):+.2f}"])
    programs = common.format_table(["shape", "program", "parts alone (CPU ms)", "combined (CPU ms)", "extra (ms)"], rows)
    rows = []
    for case, res in shapes.items():
        for name, ev in res["in_step"].items():
            rows.append([case, name, f"{common.ms(ev['min_s']):.3g}", f"{common.ms(ev['median_s']):.3g}"])
    in_step = common.format_table(["shape", "FFT", "min (ms)", "median (ms)"], rows)
    return programs, in_step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    common.add_malloc_flag(parser)
    parser.add_argument("--reps", type=int, default=7, help="timed rounds per program, traced step calls (default 7)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/fft_in_jit_cpu.json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}
    if args.reps < 1 or args.threads < 1:
        parser.error("--reps and --threads must be positive")
    report = {"benchmark": "fft_in_jit", "threads": args.threads, "malloc": args.malloc, "quick": args.quick,
              "machine": common.machine_info(), "shapes": {}}
    for case, shape in (QUICK_SHAPES if args.quick else SHAPES).items():
        payload = {"shape": shape, "threads": args.threads, "malloc": args.malloc, "reps": args.reps,
                   "min_sample_s": 0.01 if args.quick else 0.2}
        reply = common.run_worker(Path(__file__), payload, common.worker_env("cpu", args.threads), 3600)
        report["jax"] = reply.pop("jax")
        report["shapes"][case] = {"shape": shape, **reply}
    report["table"], report["in_step_table"] = tables(report["shapes"])
    out = common.write_json(args.out or common.RESULTS_DIR / "fft_in_jit_cpu.json", report)
    print(f"FFT alone and in one program, CPU ({report['machine']['cpu']}), {args.threads} thread(s), "
          f"malloc={args.malloc}, {report['machine']['date_utc']} UTC")
    print(report["table"])
    print("\nFFT instructions of a ConverseBlock training step vs the same FFTs alone (profiler events, wall):")
    print(report["in_step_table"])
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
