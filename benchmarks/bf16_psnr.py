"""PSNR of the official networks computed in bfloat16 against float32, by the paper's protocol.

    python benchmarks/bf16_psnr.py                 # all four settings, all images
    python benchmarks/bf16_psnr.py --limit 2       # first two images of each test set
    python benchmarks/bf16_psnr.py --crop 96       # centre 96×96 crops of the images (CPU budget)

Runs :func:`converse_jax.inference.evaluate.evaluate` twice per setting with the released weights, once
as stored (float32) and once with ``dtype="bfloat16"`` (bfloat16 activations and matmuls,
float32 parameters, the Converse2D solves and LayerNorm statistics in float32; see
:mod:`converse_jax.nn.precision`), and reports the mean PSNR of each and their difference:

* Converse-DnCNN, Set12, σ = 25 (gray PSNR);
* Converse-SRResNet, CSet5 ×4 (PSNR on the Y channel);
* ConverseNet and Converse-USRNet, CSet5 blurred with ``kernel_1`` plus noise σ = 2.55.

Needs the shared data (``../shared/data``: weights, test sets, blur kernels; override with
``--shared``). ``--crop N`` evaluates the centre N×N crop of every image instead (same
protocol on smaller images, one compilation per setting; for CPU-only sessions). The table goes to stdout, the numbers to ``benchmarks/results/bf16_psnr.json``
(written atomically). On a CPU this measures quality only: XLA's CPU backend has no fast
bfloat16 matrix units, so CPU timings say nothing about bfloat16 speed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from converse_jax.data.sources import folder_images
from converse_jax.inference.evaluate import evaluate
from converse_jax.utils.images import read_image, write_png

ROOT = Path(__file__).resolve().parents[1]
# (registry name, test set, evaluate() keyword arguments, which PSNR the paper reports)
SETTINGS = (
    ("converse_dncnn", "Set12", {"sigma": 25}, "psnr"),
    ("converse_srresnet", "CSet5", {}, "psnr_y"),
    ("conversenet", "CSet5", {"kernel": "kernel_1"}, "psnr"),
    ("converse_usrnet", "CSet5", {"kernel": "kernel_1"}, "psnr"),
)


def centre_crops(src: Path, dst: Path, size: int, channels: int) -> Path:
    """Writes the centre ``size``×``size`` crop of every image of ``src`` to ``dst`` (PNG)."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in folder_images(src, channels).files:
        img = read_image(path, channels)
        top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        if min(top, left) < 0:
            raise ValueError(f"--crop: {path} ({img.shape[0]}x{img.shape[1]}) is smaller than {size}")
        write_png(dst / f"{path.stem}.png", np.ascontiguousarray(img[top : top + size, left : left + size]))
    return dst


def measure(shared: Path, limit: int | None, crop: int | None, tmp: Path, models: list[str]) -> list[dict]:
    """One row per setting: model, test set, images, float32 and bfloat16 PSNR and their change."""
    rows = []
    for model, testset, kwargs, metric in SETTINGS:
        if models and model not in models:
            continue
        data = shared / "data" / "testsets" / testset
        if crop is not None:
            channels = 1 if testset == "Set12" else 3
            data = centre_crops(data, tmp / f"{testset}_{crop}", crop, channels)
        kwargs = dict(kwargs)
        if "kernel" in kwargs:
            kwargs["kernel"] = shared / "data" / "blur_kernels" / f"{kwargs['kernel']}.npy"
        psnr = {}
        for dtype in (None, "bfloat16"):
            with tempfile.TemporaryDirectory() as out:
                result = evaluate(
                    model,
                    shared / "data" / "weights" / f"{model}.pth",
                    data,
                    out_dir=out,
                    save_images=False,
                    limit=limit,
                    progress=False,
                    dtype=dtype,
                    **kwargs,
                )
            values = [getattr(row, metric) for row in result.rows]
            psnr[dtype or "float32"] = sum(values) / len(values)
        rows.append({
            "model": model,
            "testset": testset,
            "setting": result.setting,
            "metric": metric,
            "images": len(result.rows),
            "crop": crop,
            "psnr_float32": psnr["float32"],
            "psnr_bfloat16": psnr["bfloat16"],
            "change_db": psnr["bfloat16"] - psnr["float32"],
        })
        print(f"{model:18} {testset:6} {result.setting:9} {metric:6} {len(result.rows):3d} img  "
              f"float32 {psnr['float32']:.3f}  bfloat16 {psnr['bfloat16']:.3f}  "
              f"change {psnr['bfloat16'] - psnr['float32']:+.3f} dB", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("CONVERSE_SHARED", ROOT.parent / "shared")),
                        help="the shared data folder (default ../shared or $CONVERSE_SHARED)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first LIMIT images of each set")
    parser.add_argument("--models", nargs="*", default=[], help="only these networks (default: all four)")
    parser.add_argument("--crop", type=int, default=None, help="evaluate the centre CROP×CROP of each image")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bf16_psnr.json",
                        help="JSON output file")
    args = parser.parse_args()
    if not (args.shared / "data" / "weights").is_dir():
        parser.error(f"--shared: {args.shared / 'data' / 'weights'} not found")
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.shared, args.limit, args.crop, Path(tmp), args.models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps({"limit": args.limit, "crop": args.crop, "rows": rows}, indent=2) + "\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
