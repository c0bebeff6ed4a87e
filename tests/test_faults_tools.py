"""Fault injection for the batch tools and the ``.pth`` reader (issue 11, tool side).

Real files throughout: a tiny DnCNN variable store (zero weights: it returns its input), real
PNGs, a truncated PNG (the first bytes of a real one), crafted ``torch.save``-format zips, and
the ``converse-jax`` entry point (:func:`converse_jax.cli.main.main`, one subprocess for ``--debug``).
Each test asserts what is reported (one line naming the file and the cause), what is written
and the exit status.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
import zipfile

import jax
import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from converse_jax.cli.main import main
from converse_jax.models import abstract_variables, get_model
from converse_jax.utils.images import caption_height
from converse_jax.pretrained import read_pth, save_variables

TINY = {"features": 4, "num_layers": 3}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tiny ``dncnn`` variable store with zero weights (out = x - 0 = x)."""
    shapes = abstract_variables(get_model("dncnn", **TINY))
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    path = tmp_path_factory.mktemp("weights") / "dncnn"
    return str(save_variables(path, zeros, arch="dncnn", metadata={"model_kwargs": TINY}))


def _png(path, seed: int, shape=(16, 16)) -> None:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def folder_with_truncated(tmp_path):
    """``a.png``, ``b.png`` (truncated to its first 60 bytes) and ``c.png``."""
    data = tmp_path / "in"
    data.mkdir()
    for seed, name in enumerate(("a.png", "b.png", "c.png")):
        _png(data / name, seed)
    (data / "b.png").write_bytes((data / "b.png").read_bytes()[:60])
    return data


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_restore_skips_a_truncated_png_and_finishes_the_batch(store, folder_with_truncated, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, "restore", "--model", "dncnn", "--weights", store, "--quiet", str(folder_with_truncated), str(out))
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]  # the rest of the batch was done
    assert stdout.split() == [str(out / "a.png"), str(out / "c.png")]
    skipped, closing = _lines(err)  # one line for the skip, one closing line; no traceback
    assert skipped.startswith(f"skipped {folder_with_truncated / 'b.png'}: ") and "truncated" in skipped
    assert closing.startswith("converse-jax restore: error: 1 of 3 images could not be read")


def test_evaluate_skips_a_truncated_png_and_lists_it_in_results_csv(store, folder_with_truncated, tmp_path, capsys):
    out = tmp_path / "eval"
    rc, stdout, err = _run(capsys, "evaluate", "--model", "dncnn", "--weights", store, "--quiet",
                           "--data", str(folder_with_truncated), "--out", str(out))
    assert rc == 1
    assert "b.png" in _lines(err)[0] and "Traceback" not in err
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["a.png", "c.png", "average", "b.png"]
    assert rows[3]["psnr"] == "" and "truncated" in rows[3]["skipped"] and rows[0]["skipped"] == ""
    assert float(rows[2]["psnr"]) == pytest.approx((float(rows[0]["psnr"]) + float(rows[1]["psnr"])) / 2, abs=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and [s["image"] for s in summary["skipped"]] == ["b.png"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.png", "c.png"]
    assert "2 images" in stdout and "1 unreadable image(s) skipped" in stdout


def test_colliding_outputs_are_refused_before_any_work(tmp_path, capsys):
    """``x.png`` and ``x.bmp`` would both become ``x.png``; the weights path does not even exist,
    so the refusal provably comes before the weights are loaded, and nothing is created."""
    data = tmp_path / "in"
    data.mkdir()
    _png(data / "x.png", 0)
    Image.open(data / "x.png").save(data / "x.bmp")
    missing = str(tmp_path / "no_weights")
    rc, _, err = _run(capsys, "restore", "--model", "dncnn", "--weights", missing, str(data), str(tmp_path / "out"))
    assert rc == 1 and len(_lines(err)) == 1
    assert "x.bmp and x.png would both be written to" in err or "x.png and x.bmp would both be written to" in err
    rc, _, err = _run(capsys, "evaluate", "--model", "dncnn", "--weights", missing,
                      "--data", str(data), "--out", str(tmp_path / "eval"))
    assert rc == 1 and "would both be written to" in err and err.startswith("converse-jax evaluate: error: --data: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def _read_only_folder(tmp_path):
    """A folder in which no file can be created, even by root (tests run as root in CI).

    root ignores permission bits, so as root the folder is made immutable with ``chattr +i``
    (what a read-only mount does to every process); otherwise ``chmod 555`` suffices.
    """
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder, lambda: folder.chmod(0o755)
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without a working `chattr +i`: no way to make a folder unwritable")
    return folder, lambda: subprocess.run([chattr, "-i", str(folder)], check=True)


def test_unwritable_output_is_refused_before_the_weights_are_loaded(tmp_path, capsys):
    """Two unwritable outputs, each refused with one line before any computation: a folder
    below a regular file (fails for every user) and an immutable/read-only folder. The weights
    path does not exist, so the refusal provably precedes loading them."""
    data = tmp_path / "in"
    data.mkdir()
    _png(data / "a.png", 0)
    (tmp_path / "file").write_text("a regular file, not a folder")
    missing = str(tmp_path / "no_weights")
    rc, _, err = _run(capsys, "restore", "--model", "dncnn", "--weights", missing, str(data), str(tmp_path / "file" / "out"))
    assert rc == 1 and _lines(err) == [_lines(err)[0]]
    assert "OUTPUT: cannot write into" in err and "is a file, not a folder" in err
    rc, _, err = _run(capsys, "evaluate", "--model", "dncnn", "--weights", missing,
                      "--data", str(data), "--out", str(tmp_path / "file" / "eval"))
    assert rc == 1 and "--out: cannot write into" in err and "is a file, not a folder" in err
    folder, undo = _read_only_folder(tmp_path)
    try:
        rc, _, err = _run(capsys, "restore", "--model", "dncnn", "--weights", missing, str(data), str(folder))
        assert rc == 1 and f"OUTPUT: cannot write into {folder}: " in err and len(_lines(err)) == 1
        rc, _, err = _run(capsys, "evaluate", "--model", "dncnn", "--weights", missing,
                          "--data", str(data), "--out", str(folder))
        assert rc == 1 and f"--out: cannot write into {folder}: " in err
        assert list(folder.iterdir()) == []
    finally:
        undo()


def _crafted_pth(path, size: tuple[int, ...], stride: tuple[int, ...], compress: bool = False, numel: int = 1) -> None:
    """A ``torch.save``-format zip: one float32 tensor 'w' over storage '0' of ``numel`` elements."""
    ints = lambda t: b"(" + b"".join(b"I%d\n" % v for v in t) + b"t"  # noqa: E731
    pkl = (
        b"ccollections\nOrderedDict\n(tR(Vw\nctorch._utils\n_rebuild_tensor_v2\n("
        b"(Vstorage\nctorch\nFloatStorage\nV0\nVcpu\nI%d\ntQI0\n" % numel
        + ints(size) + ints(stride)
        + b"I00\nccollections\nOrderedDict\n(tRtRu."
    )
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", np.zeros(numel, "<f4").tobytes())


@pytest.mark.parametrize(
    ("size", "stride", "expected"),
    [
        ((16384, 16384), (0, 0), "declares 268435456 elements but its storage '0' holds only 1"),
        ((10**6, 10**6), (0, 0), "declares 1000000000000 elements"),
        ((10**6, 10**6), (10**6, 1), "reads element 999999999999 of storage '0'"),
    ],
)
def test_pth_with_impossible_declared_size_is_refused_before_allocating(tmp_path, capsys, size, stride, expected):
    path = tmp_path / "crafted.pth"
    _crafted_pth(path, size, stride)
    assert path.stat().st_size < 600  # the file was 526 bytes
    tracemalloc.start()
    with pytest.raises(ValueError, match="malformed checkpoint") as exc:
        read_pth(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert expected in str(exc.value)
    assert peak < 2**20  # nothing near the declared size was allocated (the 16384^2 float32 view: 1 GiB)
    rc, _, err = _run(capsys, "convert", str(path), str(tmp_path / "out"))
    assert rc == 1 and len(_lines(err)) == 1 and "crafted.pth" in err and not (tmp_path / "out").exists()


def test_pth_storage_larger_than_the_file_allows_is_refused(tmp_path):
    """A deflated 16 MiB storage of zeros fits in ~16 KiB (a zip bomb); its declared size is
    refused against 16 x the file size before the record is inflated."""
    path = tmp_path / "bomb.pth"
    _crafted_pth(path, (4 * 2**20,), (1,), compress=True, numel=4 * 2**20)
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match=r"storage '0' of 4194304 elements needs 16777216 bytes"):
        read_pth(path)


def test_debug_shows_the_traceback_and_errors_are_one_line_without_it(tmp_path, capsys):
    rc, _, err = _run(capsys, "convert", str(tmp_path / "missing.pth"), str(tmp_path / "out"))
    assert rc == 1 and len(_lines(err)) == 1 and "missing.pth does not exist" in err and "Traceback" not in err
    with pytest.raises(FileNotFoundError):
        main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out"), "--debug"])
    proc = subprocess.run(
        [sys.executable, "-m", "converse_jax", "--debug", "convert", str(tmp_path / "missing.pth"), str(tmp_path / "o")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_unexpected_exceptions_are_one_line_too(store, tmp_path, capsys):
    """A variable store whose array data was deleted: whatever orbax raises becomes one line."""
    broken = tmp_path / "broken"
    shutil.copytree(store, broken)
    data = [d for d in broken.glob("variables/**/d") if d.is_dir()]
    assert data, "the store's array data folders were not found"
    for d in data:
        shutil.rmtree(d)
    _png(tmp_path / "a.png", 0)
    rc, _, err = _run(capsys, "restore", "--model", "dncnn", "--weights", str(broken), str(tmp_path / "a.png"), str(tmp_path / "o.png"))
    assert rc == 1 and len(_lines(err)) == 1 and err.startswith("converse-jax restore: error: ")
    assert not (tmp_path / "o.png").exists()


def test_outputs_follow_the_umask(store, tmp_path, capsys):
    data = tmp_path / "in"
    data.mkdir()
    _png(data / "a.png", 0)
    old = os.umask(0o027)
    try:
        assert _run(capsys, "restore", "--model", "dncnn", "--weights", store, "--quiet", str(data), str(tmp_path / "r"))[0] == 0
        rc = _run(capsys, "evaluate", "--model", "dncnn", "--weights", store, "--quiet", "--data", str(data), "--out", str(tmp_path / "e"))[0]
        assert rc == 0
    finally:
        os.umask(old)
    for path in (tmp_path / "r" / "a.png", tmp_path / "e" / "results.csv", tmp_path / "e" / "summary.json", tmp_path / "e" / "images" / "a.png"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o640), path  # 0o666 & ~0o027, not mkstemp's 0o600


def test_small_things_users_hit(store, tmp_path, capsys):
    """--tile 30 works with the default margin; RGB to a gray model is announced; evaluate's
    panels carry captions above unchanged pixels; convert's help tells OUT is created."""
    rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rc, _, err = _run(capsys, "restore", "--model", "dncnn", "--weights", store, "--quiet", "--tile", "30",
                      str(tmp_path / "rgb.png"), str(tmp_path / "out.png"))
    assert rc == 0, err
    assert "note: dncnn takes gray images; colour inputs are converted to gray" in err
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), gray)  # identity network
    data = tmp_path / "set"
    data.mkdir()
    _png(data / "a.png", 1, (24, 24))
    assert _run(capsys, "evaluate", "--model", "dncnn", "--weights", store, "--quiet", "--data", str(data), "--out", str(tmp_path / "e"))[0] == 0
    panel = np.asarray(Image.open(tmp_path / "e" / "images" / "a.png"))
    band = caption_height(24)
    assert panel.shape == (band + 24, 3 * 24 + 2 * 4)
    np.testing.assert_array_equal(panel[band:, -24:], np.asarray(Image.open(data / "a.png")))
    assert (panel[:band] < 128).any()  # caption text
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    assert "created" in capsys.readouterr().out
