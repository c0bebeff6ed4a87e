"""Tiled against whole-image inference of the released networks: PSNR change, pixel differences, memory.

    python benchmarks/tiling.py                                # the four networks, their settings
    python benchmarks/tiling.py --networks conversenet --settings 256:64,320:96
    python benchmarks/tiling.py --quick                        # Converse-DnCNN on a 64x96 cut, 256² memory

For each network a test image is cut and degraded by its task's test degradation
(:meth:`converse_jax.tasks.Task.degrade`, seed 0):

* Converse-DnCNN: Set12 ``08.png`` cut to 321x481 (gray), AWGN sigma 25;
* Converse-SRResNet: CSet5 ``baby.png`` (512x512 RGB), MATLAB bicubic x4 (128x128 input);
* ConverseNet, Converse-USRNet: CSet5 ``baby.png`` (512x512 RGB), circular blur with
  ``kernel_1`` plus AWGN sigma 2.55 (Converse-USRNet is given the kernel); their records mirror
  the windows (``tile_mirror``), so a setting ``TILE:MARGIN`` holds ``TILE/2`` image pixels.

The degraded image is restored once whole and once per setting ``TILE:MARGIN`` (input pixels)
with :meth:`converse_jax.inference.restorer.Restorer.function` (``tile``, ``tile_margin``; ``TILE``
alone takes the network's margin; ``TILE:MARGIN:plain`` does not mirror the windows of a network
whose record does, to measure what mirroring buys). Reported per setting: the PSNR of both against the clean
image (the protocol's border) and its change, the mean and maximum absolute difference of the
two uint8 outputs, and XLA's memory estimate (:meth:`Restorer.whole_image_bytes`: arguments,
outputs and temporaries of one compiled network call, nothing run) for one window of the
setting; the whole-image row gives the estimate for a 2048x2048 output (a 512x512 input for the
x4 network). One worker process per network; the table goes to stdout, the numbers to
``benchmarks/results/tiling.json`` (``--out``). ``--shared`` points at the shared data
(default ``../shared`` beside the repository).
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

NETWORKS = ("converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet")
# network -> (test image, (rows, cols) of the cut or None, default settings TILE:MARGIN)
CASES: dict[str, tuple[str, tuple[int, int] | None, str]] = {
    "converse_dncnn": ("Set12/08.png", (321, 481), "128,256"),
    "converse_srresnet": ("CSet5/baby.png", None, "64,96"),
    "conversenet": ("CSet5/baby.png", None, "384:48,448:64"),
    "converse_usrnet": ("CSet5/baby.png", None, "256:32,384:48"),
}
QUICK = {"converse_dncnn": ("Set12/08.png", (64, 96), "64,64:24")}
OUTPUT_SIDE = 2048  # --quick: 256


def parse_settings(text: str) -> list[tuple[int, int | None, bool]]:
    """``'128,256:64,256:64:plain'`` -> ``[(128, None, False), (256, 64, False), (256, 64, True)]``
    (None: the network's margin; ``plain``: windows not mirrored whatever the record says)."""
    settings = []
    for item in text.split(","):
        tile, margin, plain = (item.split(":") + ["", ""])[:3]
        settings.append((int(tile), int(margin) if margin else None, plain == "plain"))
    return settings


def degraded_case(name: str, shared: Path, image: str, cut: tuple[int, int] | None) -> tuple[Any, Any, Any, Any]:
    """``(restorer, clean, degraded, kernel)``: network ``name`` with its released weights, test
    image ``image`` (under ``testsets``) cut to its first ``cut`` rows and columns (None: whole)
    and degraded by the task's test degradation (seed 0; blurs with ``kernel_1``, else kernel None)."""
    import numpy as np

    from converse_jax.inference.restorer import Restorer
    from converse_jax.utils.images import read_image

    restorer = Restorer(name, shared / "data" / "weights" / f"{name}.pth")
    task = restorer.kind
    img = read_image(shared / "data" / "testsets" / image, restorer.in_channels)
    if cut is not None:
        img = img[: cut[0], : cut[1]]
    kernel = np.load(shared / "data" / "blur_kernels" / "kernel_1.npy") if task.blurs else None
    truth, x = task.degrade(img, scale=restorer.scale, kernel=kernel, seed=0)
    return restorer, truth, x, kernel


def measure(payload: dict[str, Any]) -> dict[str, Any]:
    """Worker: whole-image and tiled restorations of one network's test image."""
    import numpy as np

    from converse_jax.protocol import calculate_psnr, single2uint

    name = payload["network"]
    restorer, truth, x, kernel = degraded_case(name, Path(payload["shared"]), payload["image"], payload["cut"])
    task = restorer.kind
    given = kernel if task.takes_kernel else None
    border = task.border(restorer.scale)

    def run(**options: Any) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        y = single2uint(np.asarray(restorer.function(given, **options)(x[None]))[0])
        return y, time.perf_counter() - start

    whole, seconds = run()
    whole_psnr = calculate_psnr(whole, truth, border)
    k_shape = None if given is None else (1, *given.shape)
    side = payload["output_side"] // restorer.scale
    rows = [{"setting": "whole", "tile": None, "margin": None, "psnr": whole_psnr, "delta_db": 0.0, "mean_abs": 0.0,
             "max_abs": 0, "seconds": seconds,
             "bytes": restorer.whole_image_bytes((1, side, side, restorer.in_channels), k_shape)}]
    mirror = restorer.tile_mirror
    for tile, margin, plain in payload["settings"]:
        restorer.tile_mirror = mirror and not plain
        margin = restorer.margin_for(tile) if margin is None else margin
        tiled, seconds = run(tile=tile, tile_margin=margin)
        diff = np.abs(tiled.astype(np.int16) - whole)
        psnr = calculate_psnr(tiled, truth, border)
        setting = f"tile {tile}, margin {margin}" + (", mirrored" if restorer.tile_mirror else "")
        rows.append({"setting": setting, "tile": tile, "margin": margin, "mirrored": restorer.tile_mirror, "psnr": psnr,
                     "delta_db": psnr - whole_psnr, "mean_abs": float(diff.mean()), "max_abs": int(diff.max()),
                     "seconds": seconds,
                     "bytes": restorer.whole_image_bytes((1, tile, tile, restorer.in_channels), k_shape)})
    return {"network": name, "input_shape": list(x.shape), "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated registry names")
    parser.add_argument("--settings", help="TILE[:MARGIN[:plain]],... for every network (default: each network's "
                        "own; plain: windows not mirrored)")
    parser.add_argument("--quick", action="store_true", help="Converse-DnCNN on a 64x96 cut (smoke test)")
    common.add_shared_flag(parser)
    parser.add_argument("--device", choices=common.DEVICES, default="cpu")
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "tiling.json"))
    args = parser.parse_args(argv)
    if args.worker:
        common.worker_reply(measure(json.loads(args.worker)))
        return {}
    cases = QUICK if args.quick else {n: CASES[n] for n in args.networks.split(",")}
    side = 256 if args.quick else OUTPUT_SIDE
    env = common.worker_env(args.device, None)
    results, table = [], []
    for name, (image, cut, settings) in cases.items():
        payload = {"network": name, "shared": args.shared, "image": image, "cut": cut,
                   "settings": parse_settings(args.settings or settings), "output_side": side}
        reply = common.run_worker(Path(__file__), payload, env, timeout_s=6 * 3600)
        results.append(reply)
        for row in reply["rows"]:
            gib = None if row["bytes"] is None else row["bytes"] / 2**30
            table.append([name, "x".join(map(str, reply["input_shape"][:2])), row["setting"], f"{row['psnr']:.3f}",
                          f"{row['delta_db']:+.3f}", f"{row['mean_abs']:.3f}", row["max_abs"],
                          None if gib is None else f"{gib:.2f}", f"{row['seconds']:.0f}"])
        print(common.format_table(["network", "input", "setting", "PSNR dB", "change dB", "mean abs diff",
                                   "max abs diff", f"GiB ({side}² whole / one tile)", "s"], table), flush=True)
    data = {"benchmark": "tiling", "quick": args.quick, "output_side": side, "machine": common.machine_info(),
            "jax": common.jax_info(), "results": results}
    print(f"results: {common.write_json(Path(args.out), data)}")
    return data


if __name__ == "__main__":
    main()
