"""Memory (XLA's estimate) and time per step of every training recipe, and the settings that fit.

    python benchmarks/train_memory.py                        # every recipe, estimates only (CPU)
    python benchmarks/train_memory.py --time --budget-gb 4   # also time one step in what fits 4 GiB
    python benchmarks/train_memory.py --only converse_dncnn,demo
    python benchmarks/train_memory.py --device gpu --time    # on an accelerator: its own estimates
    python benchmarks/train_memory.py --quick                # smoke test: the demo recipe, tiny

One worker process per recipe (``converse_jax/configs/NAME.py`` as packaged, its data source's
first batch) compiles the train step the way ``converse-jax train`` does
(:func:`converse_jax.train.loop.step_compiler`) and reads XLA's memory analysis of it
(:class:`converse_jax.train.memory.StepMemory`: arguments + outputs − aliased + temporaries, per
device) for the recipe as it is and with ``remat``; then the setting
:func:`converse_jax.train.memory.fit_step` (``fit_memory='auto'``) picks for devices of 16 GiB
and 12 GiB (a T4 or a V100-16GB; a Colab runtime) — with this backend's estimates, which on the
CPU are not a GPU's.  ``--time`` runs the recipe's full batch in the setting that fits
``--budget-gb`` (a real state and real batches: one warm-up step, then ``--reps`` timed ones,
median) and reports seconds per step and the days the recipe's ``num_train_steps`` would take at
that rate.  JSON: ``benchmarks/results/train_memory_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BUDGETS_GIB = (16, 12)
"""Device sizes the fitting setting is reported for (GiB)."""


def _gib(n: int | None) -> float | None:
    return None if n is None else n / 2**30


def _config(name: str, quick: bool):
    from converse_jax.configs import get_config

    config = get_config(name)
    config.data.num_threads = 0
    if quick:  # the demo's network, tiny: 4 features, 1 block, batch 4 of 12x12
        config.model_overrides.features, config.model_overrides.num_blocks = 4, 1
        config.batch_size, config.data.patch_size = 4, 12
    return config


def worker(payload: dict) -> dict:
    """Estimates (and with ``time``, times) the train step of one recipe; see the module docstring."""
    common.pin_threads(payload["threads"])
    common.apply_malloc("reuse")
    import jax

    from converse_jax.data import create_train_iterator
    from converse_jax.models import MODELS, get_model
    from converse_jax.tasks import get_task
    from converse_jax.train import create_mesh, create_train_state, global_batch, init_variables, make_optimizer
    from converse_jax.train.loop import step_compiler
    from converse_jax.train.memory import HEADROOM, Setting, StepMemory, fit_step

    config = _config(payload["name"], payload["quick"])
    task = get_task(MODELS[config.model].task)
    model = get_model(config.model, dtype=config.get("dtype"), **config.model_overrides.to_dict())
    mesh = create_mesh()
    tx = make_optimizer(config.learning_rate, config.lr_milestones, config.lr_decay, config.grad_clip_norm)
    batches = create_train_iterator(config.data, global_batch_size=config.batch_size, seed=0)
    batch = global_batch(next(batches), mesh)
    variables = init_variables(model, task.name, {k: v[:1] for k, v in batch.items() if k != "target"},
                               jax.random.PRNGKey(0), mesh)  # fmt: skip
    state = jax.jit(lambda v: create_train_state(v, tx, jax.random.PRNGKey(1)))(variables)
    compiled, compile_s = {}, {}
    compile_step = step_compiler(model, tx, task, config.ema_decay, mesh, state, batch)

    def cached(setting: Setting):
        if setting not in compiled:
            t0 = time.perf_counter()
            compiled[setting] = compile_step(setting)
            compile_s[setting] = time.perf_counter() - t0
        return compiled[setting]

    per_device = config.batch_size // mesh.devices.size
    estimates = {}
    for setting in (Setting(False, 1), Setting(True, 1)):
        memory = StepMemory.of(cached(setting))
        estimates["remat" if setting.remat else "recipe"] = None if memory is None else memory.peak
    fits = {}
    for gib in (*BUDGETS_GIB, payload["budget_gb"]):
        have = (int(gib * 2**30), f"{gib} GiB")
        try:
            _, setting, memory = fit_step(cached, Setting(False, 1), per_device_batch=per_device, have=have, policy="auto")
            fits[str(gib)] = {"remat": setting.remat, "grad_accum_steps": setting.grad_accum_steps, "peak": memory.peak}
        except Exception as error:  # noqa: BLE001  (no setting fits: recorded as such)
            fits[str(gib)] = {"error": str(error)}
    result = {
        "name": payload["name"], "model": config.model, "batch": config.batch_size,
        "patch": config.data.patch_size, "num_train_steps": config.num_train_steps,
        "params": sum(int(x.size) for x in jax.tree.leaves(state.params)),
        "estimate": estimates, "fits": fits, "headroom": HEADROOM,
        "compile_s": {f"remat={s.remat},k={s.grad_accum_steps}": t for s, t in compile_s.items()},
    }  # fmt: skip
    timed = fits[str(payload["budget_gb"])]
    if payload["time"] and "error" not in timed:
        step = cached(Setting(timed["remat"], timed["grad_accum_steps"]))
        times = []
        for i in range(1 + payload["reps"]):
            data = global_batch(next(batches), mesh)
            t0 = time.perf_counter()
            state, metrics = step(state, data)
            jax.block_until_ready(metrics)
            if i >= 1:
                times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        result["time"] = {"setting": timed, "s_per_step": seconds, "samples": times,
                          "days_for_recipe": seconds * config.num_train_steps / 86400}  # fmt: skip
    result["jax"] = common.jax_info()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=common.DEVICES, default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable)")
    parser.add_argument("--only", help="comma-separated recipe names (default: every packaged config)")
    parser.add_argument("--quick", action="store_true", help="the demo recipe with a tiny network (smoke test)")
    parser.add_argument("--time", action="store_true", help="also time the recipe's step in what fits --budget-gb")
    parser.add_argument("--budget-gb", type=float, default=4.0, help="memory for --time (GiB; default 4)")
    parser.add_argument("--reps", type=int, default=2, help="timed steps (default 2)")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/train_memory_<device>.json)")
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(worker(json.loads(args.worker)))
        return {}
    sys.path.insert(0, str(common.REPO_ROOT))
    from converse_jax.configs import config_names

    names = ["demo"] if args.quick else list(config_names())
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(config_names()))
        if unknown:
            parser.error(f"--only: unknown recipe(s) {unknown}; choose from {','.join(config_names())}")
    env = common.worker_env(args.device, args.threads)
    report = {"benchmark": "train_memory", "device": args.device, "quick": args.quick, "budget_gb": args.budget_gb,
              "machine": common.machine_info(), "recipes": {}}  # fmt: skip
    rows = []
    for name in names:
        payload = {"name": name, "quick": args.quick, "threads": args.threads, "time": args.time,
                   "budget_gb": args.budget_gb, "reps": args.reps}  # fmt: skip
        reply = common.run_worker(Path(__file__), payload, env, timeout_s=7200)
        report["jax"] = reply.pop("jax")
        report["recipes"][name] = reply

        def fit(gib, reply=reply):
            f = reply["fits"][str(gib)]
            if "error" in f:
                return "none"
            return (("remat" if f["remat"] else "") + (f" k={f['grad_accum_steps']}" if f["grad_accum_steps"] > 1 else "")).strip() or "as is"

        est = reply["estimate"]
        timing = reply.get("time")
        rows.append([
            name, reply["batch"], reply["patch"], _gib(est["recipe"]), _gib(est["remat"]),
            *(fit(g) for g in BUDGETS_GIB), fit(args.budget_gb),
            None if timing is None else timing["s_per_step"], None if timing is None else timing["days_for_recipe"],
        ])  # fmt: skip
    headers = ["recipe", "batch", "patch", "step GiB", "remat GiB", *(f"fits {g} GiB" for g in BUDGETS_GIB),
               f"fits {args.budget_gb:g} GiB", "s/step (in that)", "days for the recipe"]  # fmt: skip
    report["table"] = common.format_table(headers, rows)
    out = common.write_json(args.out or common.RESULTS_DIR / f"train_memory_{args.device}.json", report)
    print(report["table"])
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
