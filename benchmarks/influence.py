"""How far a released network's output reaches: the share of its sensitivity beyond each tile margin.

    python benchmarks/influence.py                               # the four networks, 256x256 crops
    python benchmarks/influence.py --networks conversenet --side 384
    python benchmarks/influence.py --quick                       # Converse-DnCNN on a 64x64 crop

A tile of margin ``m`` reproduces the whole image's output at a pixel up to what the pixels more
than ``m`` away contribute. For each network the test image of ``benchmarks/tiling.py`` is cut to
``side × side`` (centred) and degraded by the task's test degradation (seed 0); the network's
Jacobian-vector product with a unit impulse at the centre pixel (every channel) gives ``t``, the
change of every output pixel per unit change of that input pixel. Reported: the share of
``sum |t|`` that lies more than ``m`` input pixels (Chebyshev distance, ``m * scale`` output
pixels) from the centre, for each margin ``m`` of ``--margins``, and the largest ``|t|`` there
relative to the largest of all. The network is linearised at the degraded image, so the shares
are those of small changes; the whole image is one window (the network's own boundary handling).
The table goes to stdout, the numbers to ``benchmarks/results/influence.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common  # noqa: E402
from benchmarks.tiling import CASES, NETWORKS  # noqa: E402

MARGINS = "16,32,64,96,128"


def measure(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker: the impulse response of one network at its degraded test crop."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from converse_jax.inference.restorer import Restorer
    from converse_jax.utils.images import read_image

    name, shared, side = payload["network"], Path(payload["shared"]), payload["side"]
    restorer = Restorer(name, shared / "data" / "weights" / f"{name}.pth")
    task, s = restorer.kind, restorer.scale
    img = read_image(shared / "data" / "testsets" / payload["image"], restorer.in_channels)
    top, left = (img.shape[0] - side * s) // 2, (img.shape[1] - side * s) // 2
    img = img[top : top + side * s, left : left + side * s]
    kernel = np.load(shared / "data" / "blur_kernels" / "kernel_1.npy") if task.blurs else None
    x = jnp.asarray(task.degrade(img, scale=s, kernel=kernel, seed=0)[1][None])
    given = None if not task.takes_kernel else jnp.asarray(kernel, jnp.float32)[None]
    impulse = jnp.zeros_like(x).at[0, side // 2, side // 2, :].set(1.0)

    def net(v: jax.Array) -> jax.Array:
        return task.apply(restorer.module, restorer.variables, v, given, train=False)

    with jax.default_matmul_precision("highest"):
        t = np.abs(np.asarray(jax.jit(lambda v, dv: jax.jvp(net, (v,), (dv,))[1])(x, impulse))[0]).max(axis=-1)
    centre = s * (side // 2) + (s - 1) / 2  # the impulse's output block
    rows, cols = np.indices(t.shape)
    distance = np.maximum(np.abs(rows - centre), np.abs(cols - centre)) / s  # in input pixels
    total, peak = float(t.sum()), float(t.max())
    margins = []
    for m in payload["margins"]:
        beyond = distance > m
        margins.append({"margin": m, "share": float(t[beyond].sum()) / total,
                        "peak_ratio": float(t[beyond].max()) / peak if beyond.any() else 0.0})  # fmt: skip
    return {"network": name, "input_side": side, "margins": margins}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated registry names")
    parser.add_argument("--side", type=int, default=256, help="input crop side (default 256; x4 SR: 128)")
    parser.add_argument("--margins", default=MARGINS, help=f"comma-separated margins in input pixels ({MARGINS})")
    parser.add_argument("--quick", action="store_true", help="Converse-DnCNN on a 64x64 crop (smoke test)")
    common.add_shared_flag(parser)
    parser.add_argument("--device", choices=common.DEVICES, default="cpu")
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "influence.json"))
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(measure(json.loads(args.worker)))
        return {}
    names = ["converse_dncnn"] if args.quick else args.networks.split(",")
    margins = [int(m) for m in args.margins.split(",")]
    env = common.worker_env(args.device, None)
    results, table = [], []
    for name in names:
        side = 64 if args.quick else args.side // (4 if name == "converse_srresnet" else 1)
        payload = {"network": name, "shared": args.shared, "image": CASES[name][0], "side": side, "margins": margins}
        reply = common.run_worker(Path(__file__), payload, env, timeout_s=3600)
        results.append(reply)
        for row in reply["margins"]:
            table.append([name, side, row["margin"], f"{row['share']:.2e}", f"{row['peak_ratio']:.2e}"])
        print(common.format_table(["network", "input side", "margin", "share of sum |t| beyond",
                                   "peak |t| beyond / peak"], table), flush=True)  # fmt: skip
    data = {"benchmark": "influence", "quick": args.quick, "machine": common.machine_info(),
            "jax": common.jax_info(), "results": results}  # fmt: skip
    print(f"results: {common.write_json(Path(args.out), data)}")
    return data


if __name__ == "__main__":
    main()
