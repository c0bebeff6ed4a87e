"""``evaluate`` reproduces the official test scripts image by image (real weights, real images).

Reference: the official PyTorch code re-run on the shared test sets
(``shared/reference/official_*.csv``). One image per task keeps this file affordable on CPU
(a 256x256 Converse-DnCNN forward takes ~10 s on one core); the full tables are CLI runs.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from converse_jax.evaluate import evaluate
from converse_jax.protocol import denoise_input, single2uint, sr_input

PSNR_TOL = 0.01  # dB, the per-image tolerance
SSIM_TOL = 5e-4


def _reference(name: str) -> dict[str, dict[str, str]]:
    with open(shared_path(f"reference/{name}"), newline="") as f:
        return {row["image"]: row for row in csv.DictReader(f)}


def _csv(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_converse_dncnn_set12_sigma25_matches_official(tmp_path):
    ref = _reference("official_converse_dncnn_Set12_sigma25.csv")["01.png"]
    set12 = shared_path("data/testsets/Set12")
    result = evaluate(
        "converse_dncnn",
        shared_path("data/weights/converse_dncnn.pth"),
        set12,
        sigma=25,
        out_dir=tmp_path,
        limit=1,
        progress=False,
    )
    (row,) = result.rows
    assert row.image == "01.png"
    assert row.psnr == pytest.approx(float(ref["psnr"]), abs=PSNR_TOL)
    assert row.ssim == pytest.approx(float(ref["ssim"]), abs=SSIM_TOL)
    assert row.psnr_y is None and result.psnr_y is None
    assert (result.task, result.setting, result.psnr) == ("denoise", "sigma25", row.psnr)

    table = _csv(tmp_path / "results.csv")
    assert table[0] == ["image", "psnr", "ssim"]
    assert table[1][0] == "01.png" and float(table[1][1]) == pytest.approx(row.psnr, abs=1e-6)
    assert table[2] == ["average", table[1][1], table[1][2]]
    # Side-by-side: noisy input (the protocol's, clipped for display) | restored | clean.
    panel = np.asarray(Image.open(tmp_path / "images" / "01.png"))
    clean = np.asarray(Image.open(set12 / "01.png").convert("L"))
    assert panel.shape == (256, 3 * 256 + 2 * 4)
    np.testing.assert_array_equal(panel[:, :256], single2uint(denoise_input(clean[..., None], 25))[..., 0])
    np.testing.assert_array_equal(panel[:, -256:], clean)


def test_converse_srresnet_cset5_x4_matches_official(tmp_path):
    ref = _reference("official_converse_srresnet_CSet5_x4.csv")["butterfly.png"]
    data = tmp_path / "data"
    data.mkdir()
    (data / "butterfly.png").symlink_to(shared_path("data/testsets/CSet5/butterfly.png"))
    result = evaluate(
        "converse_srresnet",
        shared_path("data/weights/converse_srresnet.pth"),
        data,
        scale=4,
        out_dir=tmp_path / "out",
        progress=False,
    )
    (row,) = result.rows
    assert row.psnr == pytest.approx(float(ref["psnr"]), abs=PSNR_TOL)
    assert row.psnr_y == pytest.approx(float(ref["psnr_y"]), abs=PSNR_TOL)
    assert row.ssim == pytest.approx(float(ref["ssim"]), abs=SSIM_TOL)
    assert row.ssim_y == pytest.approx(float(ref["ssim_y"]), abs=SSIM_TOL)
    assert result.setting == "x4"

    table = _csv(tmp_path / "out" / "results.csv")
    assert table[0] == ["image", "psnr", "ssim", "psnr_y", "ssim_y"]
    assert [r[0] for r in table[1:]] == ["butterfly.png", "average"]
    # Side-by-side: LR enlarged by pixel repetition | restored | HR.
    panel = np.asarray(Image.open(tmp_path / "out" / "images" / "butterfly.png"))
    hr = np.asarray(Image.open(data / "butterfly.png").convert("RGB"))
    assert panel.shape == (256, 3 * 256 + 2 * 4, 3)
    lr = single2uint(sr_input(hr, 4)[1])
    np.testing.assert_array_equal(panel[::4, :256:4], lr)
    np.testing.assert_array_equal(panel[:, -256:], hr)
