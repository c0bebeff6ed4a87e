"""Shared machinery of the benchmark scripts: worker processes, timing, memory, JSON and tables.

Every script is an *orchestrator* that imports no JAX itself. It starts one *worker* process per
measurement group (``python benchmarks/NAME.py --worker JSON``) with the thread setting and device
applied to the worker's environment before JAX starts, and collects the worker's JSON answer.

Thread control (measured on jax 0.10.2, CPU): the XLA flags
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` do **not** limit the
threads of the CPU runtime (a 2048² matmul still ran on 4 threads with them); the runtime sizes
its thread pool from the process's CPU affinity mask. So a worker with ``threads=n`` is pinned to
``n`` CPUs (``os.sched_setaffinity`` before JAX is imported; per-thread CPU ticks from ``/proc``
then showed a single busy thread for FFTs, matmuls, convolutions and elementwise loops alike),
and every timing reports ``cpu_per_wall``, the parallelism actually achieved.

Allocator: XLA's CPU runtime allocates its buffers afresh on every call, and glibc serves large
ones with ``mmap`` (from the runtime's threads always: a thread's arena holds at most 64 MiB), so
every pass over a new buffer pays page faults (an elementwise add on 32 MB took 23 ms instead of
3 ms). ``--malloc reuse`` makes the worker call :func:`converse_jax.utils.host_memory.keep_freed_memory`
first thing (:func:`apply_malloc`), as the ``converse-jax`` command does; ``--malloc default``
leaves glibc as a plain Python process has it. All candidates of a comparison (PyTorch's
included) run in the same process, under the same setting.

Timing (:func:`time_candidates`): candidates of one group are compiled ahead of time (compile
time reported separately, never in a timing), warmed up, then timed in alternating order over
several repetitions; each repetition runs a candidate enough times to last ``min_sample_s``;
results are medians with the inter-quartile range. Every call is ``block_until_ready``-ed.

Memory: :func:`xla_memory` reads XLA's compiled memory analysis; :func:`measure_peak_rss` the
resident high-water mark of a phase (``/proc/self/status`` ``VmHWM``, reset through
``/proc/self/clear_refs`` — Linux ≥ 4.0), meant for a fresh worker per measurement that was
started with :func:`memory_env` so that freed buffers go back to the system.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DEVICES = ("cpu", "gpu")


# --------------------------------------------------------------------------- worker processes


def worker_env(device: str, threads: int | None) -> dict[str, str]:
    """Environment of a worker process: JAX platform, repository on ``PYTHONPATH``.

    ``device``: 'cpu' or 'gpu'. ``threads`` is applied by :func:`pin_threads` in the worker (an
    affinity mask cannot be passed through the environment); it is recorded here as
    ``BENCH_THREADS``. GPU workers do not preallocate, so peak memory is what is used.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cuda" if device == "gpu" else "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if device == "gpu":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if threads is not None:
        env["BENCH_THREADS"] = str(threads)
    return env


MALLOC_MODES = ("reuse", "default")


def add_malloc_flag(parser: Any, default: str = "reuse") -> None:
    """Adds ``--malloc {reuse,default}`` to an orchestrator's ``argparse`` parser; the worker
    applies the choice with :func:`apply_malloc`."""
    parser.add_argument("--malloc", choices=MALLOC_MODES, default=default,
                        help=f"allocator: 'reuse' freed memory, as the converse-jax command, or glibc's "
                             f"'default' (default {default!r}; see benchmarks/common.py)")


def add_shared_flag(parser: Any) -> None:
    """Adds ``--shared`` (the shared data folder: weights, test sets, blur kernels) to an
    orchestrator's parser: ``$CONVERSE_SHARED``, else ``../shared`` beside the repository."""
    parser.add_argument("--shared", default=os.environ.get("CONVERSE_SHARED", str(REPO_ROOT.parent / "shared")),
                        help="the shared data folder (default: $CONVERSE_SHARED or ../shared)")


def apply_malloc(mode: str) -> None:
    """In a worker, before JAX starts: ``'reuse'`` keeps freed memory for reuse
    (:func:`converse_jax.utils.host_memory.keep_freed_memory`), ``'default'`` changes nothing."""
    if mode not in MALLOC_MODES:
        raise ValueError(f"malloc mode must be one of {MALLOC_MODES}, got {mode!r}")
    if mode == "reuse":
        from converse_jax.utils.host_memory import keep_freed_memory

        keep_freed_memory()


def memory_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with glibc's allocator set to map every allocation ≥ 256 KiB separately and unmap
    it on free (fixed threshold, no adaptive growth), so the resident set tracks the live
    buffers and one process can measure several phases. Slows allocation: memory workers only."""
    env = dict(env)
    env["MALLOC_MMAP_THRESHOLD_"] = str(256 * 1024)
    env["MALLOC_TRIM_THRESHOLD_"] = str(256 * 1024)
    return env


def pin_threads(threads: int | None) -> list[int]:
    """Pins this process to the first ``threads`` CPUs it may use; call before importing JAX.

    Returns the CPUs used. ``None`` keeps the current mask. Raises ``ValueError`` when more
    threads are asked than CPUs are available, or when JAX is already imported (the runtime has
    sized its thread pool then).
    """
    cpus = sorted(os.sched_getaffinity(0))
    if threads is None:
        return cpus
    if "jax" in sys.modules:
        raise ValueError("pin_threads must run before jax is imported")
    if not 1 <= threads <= len(cpus):
        raise ValueError(f"threads must be in 1..{len(cpus)} (CPUs available: {cpus}), got {threads}")
    os.sched_setaffinity(0, cpus[:threads])
    return cpus[:threads]


def run_worker(script: Path, payload: dict[str, Any], env: dict[str, str], timeout_s: float) -> dict:
    """Runs ``python script --worker JSON(payload)`` and returns the JSON object it prints last.

    The worker's stderr is passed through. Raises ``RuntimeError`` with the worker's output tail
    when it fails or prints no JSON.
    """
    cmd = [sys.executable, str(script), "--worker", json.dumps(payload)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise RuntimeError(f"worker {script.name} {payload} failed (rc {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])


def worker_reply(result: dict[str, Any]) -> None:
    """Prints a worker's result as one JSON line on stdout (read by :func:`run_worker`)."""
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- timing


def block(tree: Any) -> Any:
    """``jax.block_until_ready`` on every leaf of ``tree``; returns it."""
    import jax

    return jax.block_until_ready(tree)


def compile_timed(jitted: Any, *args: Any) -> tuple[Any, float]:
    """Ahead-of-time compiles ``jitted`` for ``args``; returns (compiled, seconds spent)."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def xla_memory(compiled: Any) -> dict[str, int] | None:
    """XLA's memory analysis of a compiled executable, in bytes, or None where unavailable.

    Keys: argument, output, alias, temp (scratch + live intermediates), generated_code, and
    ``peak_estimate`` = argument + output − alias + temp (what the executable needs at most).
    """
    try:
        ma = compiled.memory_analysis()
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    if ma is None:
        return None
    out = {
        "argument": int(ma.argument_size_in_bytes),
        "output": int(ma.output_size_in_bytes),
        "alias": int(ma.alias_size_in_bytes),
        "temp": int(ma.temp_size_in_bytes),
        "generated_code": int(ma.generated_code_size_in_bytes),
    }
    out["peak_estimate"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
    return out


def time_candidates(
    candidates: dict[str, Callable[[], Any]],
    *,
    reps: int,
    min_sample_s: float = 0.05,
    warmup: int = 1,
    inner: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Times zero-argument callables (already compiled) in alternating order.

    Each candidate is warmed up ``warmup`` times; its inner loop count is ``inner`` or, when
    None, chosen by one extra timed call so that one sample lasts about ``min_sample_s``. Then
    ``reps`` rounds run every candidate once each, the order rotating by one per round. Returns
    per candidate: ``median_s``, ``min_s``, ``iqr_s`` (wall seconds per call), ``samples``
    (per-call wall seconds of each round), ``inner``, ``median_cpu_s`` and ``cpu_samples``
    (process CPU seconds per call, all threads: on a shared machine a pinned one-thread
    worker's CPU time still measures its work while its wall time also counts the time others
    held the core), ``cpu_per_wall``: CPU time over wall time during its samples (the
    parallelism achieved: ≤ 1 on one thread, less when the machine is shared), and
    ``median_page_faults`` / ``page_faults``: the process's minor page faults per call (fresh
    memory touched; see ``--malloc`` in the module docstring).
    """
    names = list(candidates)
    loops = {}
    for name in names:
        fn = candidates[name]
        for _ in range(warmup):
            block(fn())
        if inner is not None:
            loops[name] = inner
            continue
        t0 = time.perf_counter()
        block(fn())
        once = max(time.perf_counter() - t0, 1e-6)
        loops[name] = max(1, min(1000, round(min_sample_s / once)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    cpu_samples: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn, n = candidates[name], loops[name]
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            c0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(n):
                out = fn()
            block(out)
            samples[name].append((time.perf_counter() - t0) / n)
            cpu_samples[name].append((time.process_time() - c0) / n)
            faults[name].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n)
    return {name: summarize(samples[name], cpu_samples[name], faults[name], loops[name]) for name in names}


def summarize(samples: Sequence[float], cpu_samples: Sequence[float], faults: Sequence[float],
              inner: int) -> dict[str, Any]:
    """One candidate's statistics from its per-call samples (wall s, CPU s, page faults), as
    :func:`time_candidates` reports them; also pools the samples of several processes.

    Example:
      >>> stats = summarize([2.0, 1.0, 3.0], [1.0, 1.0, 1.0], [0, 0, 5], inner=1)
      >>> stats["median_s"], stats["min_s"], stats["cpu_per_wall"], stats["median_page_faults"]
      (2.0, 1.0, 0.5, 0)
    """
    s = sorted(samples)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
    return {
        "median_s": statistics.median(s),
        "min_s": s[0],
        "iqr_s": q[2] - q[0],
        "samples": list(samples),
        "inner": inner,
        "median_cpu_s": statistics.median(cpu_samples),
        "cpu_samples": list(cpu_samples),
        "cpu_per_wall": sum(cpu_samples) / sum(samples),
        "median_page_faults": statistics.median(faults),
        "page_faults": list(faults),
    }


def run_ratios(
    runs: Sequence[dict[str, dict[str, Any]]], name: str, baseline: str, key: str = "median_s"
) -> list[float]:
    """Per worker process: ``name``'s ``key`` over ``baseline``'s in the same process."""
    return [run[name][key] / run[baseline][key] for run in runs]


def median_ratio(
    runs: Sequence[dict[str, dict[str, Any]]], name: str, baseline: str, key: str = "median_s"
) -> float:
    """Median over worker processes of :func:`run_ratios`."""
    return statistics.median(run_ratios(runs, name, baseline, key))


def merge_runs(runs: Sequence[dict[str, dict[str, Any]]], baseline: str) -> dict[str, Any]:
    """Combines the :func:`time_candidates` results of several worker processes.

    ``runs``: one ``{candidate: stats}`` per process, same candidates. A process's memory
    placement (page faults of fresh buffers, huge pages) shifts its timings as a whole, by up
    to ~25% here between otherwise identical processes, so each ratio is taken *within* a
    process and the median over processes is reported. Returns ``stats`` (per candidate: the
    median over processes of ``median_s`` and ``median_cpu_s``, ``run_medians_s``, ``min_s``,
    all ``samples`` / ``cpu_samples``, ``cpu_per_wall``, and the first run's other fields),
    ``ratio`` and ``cpu_ratio`` (per candidate: median over processes of its median over
    ``baseline``'s, wall and CPU time) and ``ratio_range`` (per candidate: (min, max) of those
    wall ratios).
    """
    if not runs:
        raise ValueError("runs must hold at least one result")
    merged: dict[str, Any] = {"stats": {}, "ratio": {}, "cpu_ratio": {}, "ratio_range": {}}
    for name in runs[0]:
        per_run = [run[name] for run in runs]
        stats = dict(per_run[0])
        stats.update(
            median_s=statistics.median(r["median_s"] for r in per_run),
            median_cpu_s=statistics.median(r["median_cpu_s"] for r in per_run),
            run_medians_s=[r["median_s"] for r in per_run],
            min_s=min(r["min_s"] for r in per_run),
            samples=[x for r in per_run for x in r["samples"]],
            cpu_samples=[x for r in per_run for x in r["cpu_samples"]],
        )
        stats["cpu_per_wall"] = sum(stats["cpu_samples"]) / sum(stats["samples"])
        merged["stats"][name] = stats
        ratios = run_ratios(runs, name, baseline)
        merged["ratio"][name] = statistics.median(ratios)
        merged["cpu_ratio"][name] = median_ratio(runs, name, baseline, "median_cpu_s")
        merged["ratio_range"][name] = (min(ratios), max(ratios))
    return merged


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (e.g. 'VmHWM'), or None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure_peak_rss(fn: Callable[[], Any]) -> dict[str, float | None]:
    """Runs ``fn()`` (blocking on its result) and reports resident memory in MiB.

    ``before``: resident set before; ``peak``: high-water mark during the call (reset just
    before it where the kernel allows, else the process's lifetime peak from ``getrusage``);
    ``delta``: peak − before, the memory the call itself needed. ``reset`` tells whether the
    mark was reset (else ``peak``/``delta`` include anything earlier in the process).
    """
    import resource

    before = _status_kib("VmRSS")
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    out = fn()
    block(out)
    del out
    peak = _status_kib("VmHWM") if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    mib = 1024.0
    return {
        "before": before / mib if before is not None else None,
        "peak": peak / mib,
        "delta": (peak - before) / mib if before is not None else None,
        "reset": reset,
    }


def device_peak_bytes() -> int | None:
    """Peak bytes in use on the first JAX device (GPU allocators report it; CPU: None)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    if not stats:
        return None
    return stats.get("peak_bytes_in_use")


# --------------------------------------------------------------------------- info, JSON, tables


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Host description (no JAX): CPU model, CPUs usable, Python, OS, date, git commit (with
    ``-dirty`` when the working tree has uncommitted changes)."""
    return {
        "cpu": _cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpus_total": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "git_commit": _git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def jax_info() -> dict[str, Any]:
    """JAX side of a worker: versions, backend, devices, CPUs pinned, XLA_FLAGS."""
    import jax
    import jaxlib

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d.device_kind) for d in jax.devices()],
        "cpus_pinned": sorted(os.sched_getaffinity(0)),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def write_json(path: Path, data: Any) -> Path:
    """Writes ``data`` as indented JSON atomically (temp file in the same folder, then replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pipes), floats with 3 significant digits, None as '–'."""

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float | None) -> float | None:
    """Seconds to milliseconds (None stays None)."""
    return None if seconds is None else seconds * 1e3
