"""Fault injection, round two (issue 22), inference side: weights verified at every load, every bad
input image skipped by name.

Real files throughout: a tiny Converse-DnCNN training run (trained in this process), a variable
store written by ``save_variables``, the official ``.pth`` with one float turned into a NaN inside
its zip, an exported artifact; the commands run through :func:`converse_jax.cli.main.main` as a
user types them.  Each test asserts the one-line message, the exit status and that nothing good
was lost or silently changed (outputs present for what could be done, nothing written for what
could not).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image
from test_faults_training import jax_cache, tiny_config, write_images  # noqa: F401 (jax_cache: a fixture)

from converse_jax.cli.main import main
from converse_jax.pretrained import load, load_variables, save_variables
from converse_jax.pretrained.runs import read_run
from converse_jax.train import train_and_evaluate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, jax_cache):  # noqa: F811 (the imported fixture)
    """A finished tiny Converse-DnCNN run (checkpoints 1..6, evaluated at 3 and 6) and some test images."""
    root = tmp_path_factory.mktemp("verified")
    write_images(root / "data" / "train", 4, 24, seed=0)
    write_images(root / "data" / "val", 1, 16, seed=1)
    train_and_evaluate(tiny_config(root / "data"), root / "run")
    images = write_images(root / "images", 2, 20, seed=2)
    for name, shape in (("t1x1.png", (1, 1)), ("t3x3.png", (3, 3)), ("t2x7.png", (2, 7))):
        Image.fromarray(np.zeros(shape, np.uint8)).save(images / name)
    return root / "run", images


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


def _flip(path: Path, at: float = 0.5, count: int = 3) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start : start + count] = bytes(b ^ 0x5A for b in data[start : start + count])
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_variable_store_are_one_line_and_nothing_is_written(tmp_path, capsys):
    rng = np.random.default_rng(0)
    variables = {"params": {"w": rng.standard_normal((64, 64)).astype(np.float32)}}
    store = save_variables(tmp_path / "store", variables, arch="dncnn")
    assert load_variables(store)[1]["params"]["w"].tobytes() == variables["params"]["w"].tobytes()
    data = max((store / "variables").rglob("d/*"), key=lambda p: p.stat().st_size)
    original = data.read_bytes()
    for at in (0.3, 0.5, 0.7):  # where the bytes land decides between unreadable and other numbers; both are refused
        data.write_bytes(original)
        _flip(data, at, 2)
        with pytest.raises(ValueError, match=r"variable store .*store is damaged"):
            load_variables(store)


def test_load_refuses_a_store_holding_nan(tmp_path):
    store = save_variables(tmp_path / "nan", {"params": {"w": np.array([1.0, np.nan], np.float32)}}, arch="dncnn")
    assert np.isnan(load_variables(store)[1]["params"]["w"][1])  # the store keeps what it was given, bit-exactly
    with pytest.raises(ValueError, match=rf"path: {re.escape(str(store))}: params/w holds NaN or infinity; non-finite"):
        load(store)


@pytest.fixture(scope="module")
def nan_pth(tmp_path_factory):
    """The official Converse-DnCNN ``.pth`` with its first float replaced by a NaN (inside the zip, no torch)."""
    source = shared_path("data/weights/converse_dncnn.pth")
    path = tmp_path_factory.mktemp("nan") / "nan.pth"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
        done = False
        for info in zin.infolist():
            data = zin.read(info)
            if not done and "/data/" in info.filename and len(data) >= 64:
                data, done = np.array([np.nan], "<f4").tobytes() + data[4:], True
            zout.writestr(info, data)
    return path


def test_convert_and_restore_refuse_a_pth_holding_nan(nan_pth, run, tmp_path, capsys):
    status, _, err = _cli(capsys, "convert", nan_pth, tmp_path / "out")
    assert status == 1 and _error_lines(err) == [
        f"converse-jax convert: error: {nan_pth}: m_head.0.weight holds NaN or infinity; non-finite weights are refused"
    ]
    assert not (tmp_path / "out").exists()
    _, images = run
    status, _, err = _cli(capsys, "restore", "--weights", nan_pth, images / "img0.png", tmp_path / "o.png")
    assert status == 1 and "holds NaN or infinity" in err and not (tmp_path / "o.png").exists()


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_a_run_checkpoint_that_fails_its_checksum_is_passed_over_and_said(run, tmp_path, capsys, caplog):
    run_dir, images = run
    copy = _copy_run(run_dir, tmp_path)
    best = read_run(copy).step
    assert best in (3, 6)  # the evaluated checkpoints
    record_path = copy / "checkpoints" / str(best) / "integrity" / "metadata"
    record = json.loads(record_path.read_text())
    name = next(n for n in record["state"] if n.startswith(".ema_params"))
    record["state"][name]["crc32"] ^= 1
    record_path.write_text(json.dumps(record))

    logger = logging.getLogger("converse_jax.pretrained.runs")
    logger.addHandler(caplog.handler)  # the command-line tools make this logger print on stderr and not propagate
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            weights = read_run(copy)
    finally:
        logger.removeHandler(caplog.handler)
    assert weights.step == 6 if best != 6 else weights.step == 5
    assert f"checkpoint {copy / 'checkpoints' / str(best)} is damaged: params/" in caplog.text
    assert f"loaded checkpoint {weights.step} instead" in caplog.text
    with pytest.raises(ValueError, match="differs from its checksum"):
        read_run(copy, step=best)  # an explicit step: no fallback

    status, _, err = _cli(capsys, "evaluate", "--weights", copy, "--data", images, "--out", tmp_path / "e", "--quiet",
                          "--limit", "1")  # fmt: skip
    assert status == 0, err
    assert f"converse-jax evaluate: weights: {copy}: checkpoint {weights.step}" in err.splitlines()
    assert any(
        "is damaged" in line and f"loaded checkpoint {weights.step} instead" in line for line in err.splitlines()
    )
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["step"] == weights.step


def test_flipped_bytes_in_every_checkpoint_of_a_run_never_give_garbage(run, tmp_path):
    run_dir, _ = run
    copy = _copy_run(run_dir, tmp_path)
    for step in range(1, 7):  # the OCDBT data files that orbax merged when the checkpoint was finished
        for data in (copy / "checkpoints" / str(step) / "state" / "d").iterdir():
            _flip(data, 0.5, 64)
    with pytest.raises(ValueError, match=r"is damaged: .*no intact checkpoint to load"):
        read_run(copy)


def test_a_half_written_checkpoint_is_invisible_to_readers(run, tmp_path, capsys):
    run_dir, images = run
    copy = _copy_run(run_dir, tmp_path)
    want = read_run(copy)
    shutil.copytree(copy / "checkpoints" / "6", copy / "checkpoints" / "7.orbax-checkpoint-tmp")  # a save under way
    (copy / "checkpoints" / "7.orbax-checkpoint-tmp" / "commit_success.txt").unlink()
    shutil.rmtree(copy / "checkpoints" / "5" / "state")  # a checkpoint being deleted by the run's keep policy
    got = read_run(copy)
    assert got.step == want.step
    status, _, err = _cli(capsys, "restore", "--weights", copy, images / "img0.png", tmp_path / "o.png", "--quiet")
    assert status == 0 and f"checkpoint {want.step}" in err and (tmp_path / "o.png").is_file()


def test_flipped_bytes_in_an_exported_artifact_are_one_line(run, tmp_path, capsys):
    run_dir, images = run
    artifact = tmp_path / "net.jax"
    status, _, err = _cli(capsys, "export", "--weights", run_dir, "--out", artifact, "--shape", "20x20")
    assert status == 0, err
    _flip(artifact, 0.6, 3)
    status, _, err = _cli(capsys, "restore", "--exported", artifact, images / "img0.png", tmp_path / "o.png")
    assert status == 1
    (line,) = _error_lines(err)
    assert re.fullmatch(rf"converse-jax restore: error: exported: {re.escape(str(artifact))} is damaged: "
                        r"module [01] \(shape \[(512, 512|20, 20)\]\) differs from its checksum", line), line  # fmt: skip
    assert not (tmp_path / "o.png").exists()


def test_tiny_images_are_skipped_by_name_and_the_rest_is_done(run, tmp_path, capsys):
    run_dir, images = run
    status, out, err = _cli(capsys, "restore", "--weights", run_dir, images, tmp_path / "r", "--quiet")
    assert status == 1
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["img0.png", "img1.png"]
    for name, size in (("t1x1.png", "1x1"), ("t2x7.png", "2x7"), ("t3x3.png", "3x3")):
        assert any(line.startswith(f"skipped {images / name}: {size} is too small for converse_dncnn (circular padding")
                   for line in err.splitlines()), err  # fmt: skip

    status, _, err = _cli(
        capsys, "evaluate", "--weights", run_dir, "--data", images, "--out", tmp_path / "e", "--quiet"
    )
    assert status == 1
    with open(tmp_path / "e" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["img0.png", "img1.png", "average", "t1x1.png", "t2x7.png", "t3x3.png"]
    assert all(r["psnr"] for r in rows[:3]) and all("too small for converse_dncnn" in r["skipped"] for r in rows[3:])
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["images"] == 2 and summary["step"] == read_run(run_dir).step
    assert _error_lines(err)[-1].startswith("converse-jax evaluate: error: 3 of 5 images")


def test_load_checks_a_run_like_the_tools(run):
    run_dir, _ = run
    loaded: dict = {}
    module, variables = load(run_dir, loaded=loaded)
    assert loaded == {"step": read_run(run_dir).step} and "params" in variables and module.features == 4
