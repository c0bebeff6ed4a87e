"""One window, plain and mirrored: how much a tile's core differs from the whole image, per margin.

    python benchmarks/window_error.py                              # ConverseNet and Converse-USRNet
    python benchmarks/window_error.py --networks conversenet --margins 64,128,192
    python benchmarks/window_error.py --quick                      # Converse-DnCNN on a 128x128 cut

``benchmarks/tiling.py`` restores whole images in tiles, which costs tens of windows per setting;
this measures single windows, so that margins too large for the test images' tilings can be
measured too. For each network the test image of ``benchmarks/tiling.py`` (uncut: CSet5
``baby.png``, 512x512, for the deblurring networks) is degraded as there (seed 0) and restored
whole. Then, for each core position ``ROWxCOL`` of ``--cores`` (its top-left input pixel; the core
is ``--core`` pixels square) and each margin ``m``, one window holding the periodic range
``[ROW - m, ROW + core + m)`` x ``[COL - m, COL + core + m)`` of the image is restored, plain and
mirrored (the same pixels followed by their mirror image along both axes, as
:func:`converse_jax.inference.tiling.tiled_apply` cuts them with ``mirror=True`` away from the
image border), and its core is compared with the whole image's: mean, root-mean-square and
largest absolute difference in grey levels (float outputs times 255). The core's outer pixels lie
``m`` pixels from the cut, so these are the errors a tiling of margin ``m`` makes at its worst.
The table goes to stdout, the numbers to ``benchmarks/results/window_error.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common  # noqa: E402
from benchmarks.tiling import CASES, degraded_case  # noqa: E402

NETWORKS = ("conversenet", "converse_usrnet")
QUICK = {"network": "converse_dncnn", "cut": (128, 128), "cores": "56x56", "core": 16, "margins": "8,16"}


def measure(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker: the whole image and the windows of one network."""
    import numpy as np

    name, core = payload["network"], payload["core"]
    restorer, _, x, kernel = degraded_case(name, Path(payload["shared"]), CASES[name][0], payload["cut"])
    net = restorer.function(kernel if restorer.kind.takes_kernel else None)
    whole = np.asarray(net(x[None]))[0]
    h, w = x.shape[:2]
    rows = []
    for top, left in payload["cores"]:
        truth = whole[top : top + core, left : left + core]
        for m in payload["margins"]:
            held = x[((top - m + np.arange(core + 2 * m)) % h)[:, None], ((left - m + np.arange(core + 2 * m)) % w)]
            for mirrored in (False, True):
                window = np.concatenate([held, held[::-1]], 0) if mirrored else held
                window = np.concatenate([window, window[:, ::-1]], 1) if mirrored else window
                start = time.perf_counter()
                y = np.asarray(net(window[None]))[0, m : m + core, m : m + core]
                d = np.abs(y - truth) * 255
                rows.append(
                    {
                        "core": [top, left],
                        "margin": m,
                        "mirrored": mirrored,
                        "window": list(window.shape[:2]),
                        "mean_abs": float(d.mean()),
                        "rms": float(np.sqrt(np.mean(d * d))),
                        "max_abs": float(d.max()),
                        "seconds": time.perf_counter() - start,
                    }
                )
    return {"network": name, "input_shape": list(x.shape), "core": core, "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated registry names")
    parser.add_argument("--cores", default="224x224,96x320", help="ROWxCOL,... top-left input pixel of each core")
    parser.add_argument("--core", type=int, default=64, help="side of the core in input pixels")
    parser.add_argument("--margins", default="64,128,192", help="comma-separated margins in input pixels")
    parser.add_argument("--quick", action="store_true", help="Converse-DnCNN on a 128x128 cut (smoke test)")
    common.add_shared_flag(parser)
    parser.add_argument("--device", choices=common.DEVICES, default="cpu")
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "window_error.json"))
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(measure(json.loads(args.worker)))
        return {}
    if args.quick:
        args.networks, args.cores, args.core, args.margins = (
            QUICK["network"],
            QUICK["cores"],
            QUICK["core"],
            QUICK["margins"],
        )
    cores = [[int(v) for v in item.split("x")] for item in args.cores.split(",")]
    margins = [int(m) for m in args.margins.split(",")]
    env = common.worker_env(args.device, None)
    results, table = [], []
    for name in args.networks.split(","):
        cut = QUICK["cut"] if args.quick else None
        payload = {
            "network": name,
            "shared": args.shared,
            "cut": cut,
            "cores": cores,
            "core": args.core,
            "margins": margins,
        }
        reply = common.run_worker(Path(__file__), payload, env, timeout_s=6 * 3600)
        results.append(reply)
        for row in reply["rows"]:
            table.append(
                [
                    name,
                    "x".join(map(str, row["core"])),
                    row["margin"],
                    "mirrored" if row["mirrored"] else "plain",
                    "x".join(map(str, row["window"])),
                    f"{row['mean_abs']:.3f}",
                    f"{row['rms']:.3f}",
                    f"{row['max_abs']:.2f}",
                    f"{row['seconds']:.0f}",
                ]
            )
        print(
            common.format_table(
                [
                    "network",
                    "core at",
                    "margin",
                    "window",
                    "network input",
                    "mean abs diff",
                    "rms diff",
                    "max abs diff",
                    "s",
                ],
                table,
            ),
            flush=True,
        )
    data = {
        "benchmark": "window_error",
        "quick": args.quick,
        "core": args.core,
        "machine": common.machine_info(),
        "jax": common.jax_info(),
        "results": results,
    }
    print(f"results: {common.write_json(Path(args.out), data)}")
    return data


if __name__ == "__main__":
    main()
