"""The ``converse-jax`` command line: models, convert, evaluate, restore and its error reports.

The networks run on small crops (64x64) so that the whole file stays cheap; the per-image
agreement with the official results is in ``test_readme.py`` (the README's evaluate commands).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path
from PIL import Image

from converse_jax.cli.main import main
from converse_jax.models.registry import MODELS
from converse_jax.utils.images import caption_height
from converse_jax.protocol import calculate_psnr, deblur_input

CROP = 64


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def bird_crops(tmp_path_factory):
    """Folder with two 64x64 RGB crops of CSet5/bird.png (same shape: one compilation)."""
    img = np.asarray(Image.open(shared_path("data/testsets/CSet5/bird.png")).convert("RGB"))
    folder = tmp_path_factory.mktemp("crops")
    Image.fromarray(img[100 : 100 + CROP, 120 : 120 + CROP]).save(folder / "a.png")
    Image.fromarray(img[180 : 180 + CROP, 40 : 40 + CROP]).save(folder / "b.png")
    return folder


@pytest.fixture(scope="module")
def converted_conversenet(tmp_path_factory):
    """``converse-jax convert`` of the official conversenet.pth into a variable store."""
    out = tmp_path_factory.mktemp("store") / "conversenet"
    rc = main(["convert", str(shared_path("data/weights/conversenet.pth")), str(out)])
    assert rc == 0
    return out


def test_models_lists_every_registry_name(capsys):
    rc, out, _ = _run(capsys, "models")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "task", "scale"]
    listed = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(listed) == set(MODELS)
    for name, spec in MODELS.items():
        assert listed[name][1] == spec.task
        assert f"{spec.param_count:,}" in listed[name]
    assert "796,353" in listed["converse_dncnn"] and "734,913" in listed["converse_dncnn"]


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "converse_jax", "models"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "converse_usrnet" in proc.stdout


def test_convert_prints_arch_and_count_and_writes_a_store(converted_conversenet, capsys, tmp_path):
    from converse_jax.pretrained import load_variables, read_pth

    arch, variables = load_variables(converted_conversenet)
    assert arch == "conversenet"
    total = sum(int(np.prod(a.shape)) for a in _leaves(variables))
    assert total == 243_267 == sum(a.size for a in read_pth(shared_path("data/weights/conversenet.pth")).values())
    # The printed line, and refusing to overwrite without --overwrite.
    rc, out, _ = _run(capsys, "convert", str(shared_path("data/weights/conversenet.pth")), str(tmp_path / "s"))
    assert rc == 0 and out.startswith("conversenet: 243,267 parameters")
    rc, _, err = _run(capsys, "convert", str(shared_path("data/weights/conversenet.pth")), str(tmp_path / "s"))
    assert rc == 1 and "already exists" in err


def test_convert_takes_an_official_name(tmp_path, capsys, monkeypatch):
    """``convert converse_dncnn OUT`` reads the cached official checkpoint, as ``load`` and ``--weights`` do."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "converse_dncnn.pth").symlink_to(shared_path("data/weights/converse_dncnn.pth"))
    monkeypatch.setenv("CONVERSE_JAX_CACHE", str(cache))
    rc, out, err = _run(capsys, "convert", "converse_dncnn", str(tmp_path / "dncnn"))
    assert rc == 0 and out.startswith("converse_dncnn: 796,353 parameters"), err
    rc, _, err = _run(capsys, "convert", "converse_dncn", str(tmp_path / "typo"))
    assert rc == 1 and "IN: converse_dncn does not exist (and is not an official checkpoint name" in err


def _leaves(tree):
    for value in tree.values():
        yield from (_leaves(value) if isinstance(value, dict) else [value])


def test_evaluate_with_converted_store_equals_pth(converted_conversenet, bird_crops, tmp_path, capsys):
    kernel = shared_path("data/blur_kernels/kernel_2.npy")
    common = ["evaluate", "--model", "conversenet", "--data", str(bird_crops), "--kernel", str(kernel), "--quiet"]
    rc, out, err = _run(capsys, *common, "--weights", str(converted_conversenet), "--out", str(tmp_path / "store"))
    assert rc == 0, err
    assert "conversenet kernel_2: 2 images" in out
    rc, _, err = _run(
        capsys, *common, "--weights", str(shared_path("data/weights/conversenet.pth")), "--out", str(tmp_path / "pth")
    )
    assert rc == 0, err
    rows = _read_rows(tmp_path / "store" / "results.csv")
    assert rows == _read_rows(tmp_path / "pth" / "results.csv")
    assert list(rows[0]) == ["image", "psnr", "ssim"]
    assert [r["image"] for r in rows] == ["a.png", "b.png", "average"]
    # The restoration beats its degraded input (the protocol's blur + noise), image by image.
    for row in rows[:2]:
        truth, degraded = deblur_input(np.asarray(Image.open(bird_crops / row["image"])), np.load(kernel))
        panel = np.asarray(Image.open(tmp_path / "store" / "images" / row["image"]))
        restored = panel[caption_height(CROP):, CROP + 4 : 2 * CROP + 4]  # under the captions
        assert calculate_psnr(restored, truth, 1) == pytest.approx(float(row["psnr"]), abs=1e-6)
        degraded_psnr = calculate_psnr(np.round(np.clip(degraded, 0, 1) * 255).astype(np.uint8), truth, 1)
        assert float(row["psnr"]) > degraded_psnr + 1.0
    assert float(rows[2]["psnr"]) == pytest.approx((float(rows[0]["psnr"]) + float(rows[1]["psnr"])) / 2, abs=1e-5)
    summary = json.loads((tmp_path / "store" / "summary.json").read_text())
    assert summary["task"] == "deblur" and summary["border"] == 1 and summary["sigma"] == 2.55


def test_restore_single_image_and_folder(bird_crops, tmp_path, capsys):
    weights = str(shared_path("data/weights/converse_usrnet.pth"))
    kernel = str(shared_path("data/blur_kernels/kernel_1.npy"))
    common = ["restore", "--model", "converse_usrnet", "--weights", weights, "--kernel", kernel, "--quiet"]
    # Single file, --degrade synthesises the protocol's blur + noise and keeps that input; the
    # output's folder does not exist yet and is created.
    rc, out, err = _run(capsys, *common, "--degrade", str(bird_crops / "a.png"), str(tmp_path / "new" / "one"))
    assert rc == 0, err
    assert out.split() == [str(tmp_path / "new" / "one.png")]
    restored = np.asarray(Image.open(tmp_path / "new" / "one.png"))
    degraded = np.asarray(Image.open(tmp_path / "new" / "one_degraded.png"))
    truth = np.asarray(Image.open(bird_crops / "a.png"))
    assert restored.shape == degraded.shape == truth.shape == (CROP, CROP, 3)
    assert calculate_psnr(restored, truth, 1) > calculate_psnr(degraded, truth, 1) + 1.0
    # Folder of blurred images as a user has them (fed as is); outputs are named after the inputs.
    blurred = tmp_path / "blurred"
    blurred.mkdir()
    truths = {}
    for name in ("a.png", "b.png"):
        truths[name], lq = deblur_input(np.asarray(Image.open(bird_crops / name)), np.load(kernel))
        Image.fromarray(np.round(np.clip(lq, 0, 1) * 255).astype(np.uint8)).save(blurred / name)
    rc, out, err = _run(capsys, *common, str(blurred), str(tmp_path / "out"))
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    for name, truth in truths.items():
        before = calculate_psnr(np.asarray(Image.open(blurred / name)), truth, 1)
        assert calculate_psnr(np.asarray(Image.open(tmp_path / "out" / name)), truth, 1) > before + 1.0
    assert not list(tmp_path.glob("**/.*.tmp"))  # atomic writes leave no temporaries


def _error(capsys, *argv: str) -> str:
    rc, _, err = _run(capsys, *argv)
    assert rc == 1, err
    return err


def test_errors_are_reported_clearly(bird_crops, converted_conversenet, tmp_path, capsys):
    dncnn_pth = str(shared_path("data/weights/converse_dncnn.pth"))
    store = str(converted_conversenet)
    data = str(bird_crops)
    out = str(tmp_path / "o")
    ev = ["evaluate", "--data", data, "--out", out]
    # Weights of another network: both names in the message (.pth and store).
    k1 = str(shared_path("data/blur_kernels/kernel_1.npy"))
    err = _error(capsys, *ev, "--model", "conversenet", "--weights", dncnn_pth, "--kernel", k1)
    assert "'converse_dncnn'" in err and "'conversenet'" in err
    err = _error(capsys, *ev, "--model", "converse_dncnn", "--weights", store)
    assert "'converse_dncnn'" in err and "'conversenet'" in err
    assert "unknown model name 'nope'" in _error(capsys, *ev, "--model", "nope", "--weights", store)
    err = _error(capsys, *ev, "--model", "conversenet", "--kernel", k1, "--weights", str(tmp_path / "missing.pth"))
    assert "missing.pth does not exist" in err
    err = _error(capsys, "evaluate", "--data", str(tmp_path / "nodata"), "--out", out, "--model", "conversenet",
                 "--weights", store, "--kernel", k1)
    assert "nodata" in err
    assert "needs a blur kernel" in _error(capsys, *ev, "--model", "conversenet", "--weights", store)
    assert "sigma" in _error(capsys, *ev, "--model", "converse_srresnet", "--weights", dncnn_pth, "--sigma", "10")
    assert "scale" in _error(capsys, *ev, "--model", "converse_srresnet", "--weights", dncnn_pth, "--scale", "2")
    assert "k.npy does not exist" in _error(
        capsys, *ev, "--model", "conversenet", "--weights", store, "--kernel", str(tmp_path / "k.npy")
    )
    np.save(tmp_path / "k.npy", np.ones((7, 7)) / 49)
    assert "does not use a blur kernel" in _error(
        capsys, *ev, "--model", "converse_dncnn", "--weights", dncnn_pth, "--kernel", str(tmp_path / "k.npy")
    )
    np.save(tmp_path / "k3d.npy", np.ones((1, 7, 7)))
    assert "2-D" in _error(
        capsys, *ev, "--model", "conversenet", "--weights", store, "--kernel", str(tmp_path / "k3d.npy")
    )
    assert not (tmp_path / "o").exists()  # nothing written when the arguments are refused
    img = str(bird_crops / "a.png")
    rs = ["restore", "--weights", dncnn_pth]
    assert "needs --tile" in _error(capsys, *rs, "--model", "converse_dncnn", "--tile-margin", "8", img, out)
    assert "only used with" in _error(capsys, *rs, "--model", "converse_dncnn", "--sigma", "25", img, out)
    assert "--tile-margin" in _error(capsys, *rs, "--model", "converse_dncnn", "--tile", "16", "--tile-margin", "8", img, out)
    assert "overwrite the input" in _error(capsys, *rs, "--model", "converse_dncnn", img, img)
    assert "needs a blur kernel" in _error(
        capsys, "restore", "--model", "converse_usrnet", "--weights", dncnn_pth, img, out
    )
    assert "PNG" in _error(capsys, *rs, "--model", "converse_dncnn", img, str(tmp_path / "x.jpg"))
    with pytest.raises(SystemExit) as exc:  # usage errors: argparse, status 2
        main(["evaluate", "--weights", store])
    assert exc.value.code == 2


def test_x8_with_kernel_is_equivariant(bird_crops):
    """x8 of the non-blind deblurrer turns the kernel with the image: restoring the rotated and
    mirrored image with the equally transformed kernel gives the transformed restoration."""
    from converse_jax.inference.restorer import Restorer

    restorer = Restorer("converse_usrnet", shared_path("data/weights/converse_usrnet.pth"))
    kernel = np.load(shared_path("data/blur_kernels/kernel_2.npy"))  # no dihedral symmetry
    assert not np.allclose(kernel, np.rot90(kernel))
    x = deblur_input(np.asarray(Image.open(bird_crops / "a.png")), kernel)[1][None]

    def turn(a, axes):  # a quarter turn then a left-right mirror
        return np.flip(np.rot90(a, 1, axes=axes), axis=axes[1])

    for x8, tol in ((True, 1e-4), (False, None)):
        y = np.asarray(restorer.function(kernel, x8=x8)(x))
        y_turned = np.asarray(restorer.function(turn(kernel, (0, 1)), x8=x8)(turn(x, (1, 2))))
        err = np.abs(turn(y, (1, 2)) - y_turned).max()
        if x8:
            assert err <= tol, err
        else:  # the network alone is not equivariant, so the check above is not vacuous
            assert err > 1e-3, err
