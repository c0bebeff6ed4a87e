"""``converse-jax showcase``: the figure of the four official networks, and its error reports.

The command runs once, at ``--size 64`` (about 20 s on two CPU cores, mostly compilation).
"""

from __future__ import annotations

import re

import pytest
from conftest import shared_path
from PIL import Image

from converse_jax.cli.main import main
from converse_jax.cli.showcase import CASES, GAP
from converse_jax.utils.images import caption_height

SIZE = 64
LINE = re.compile(r"^(\w+): degraded (\d+\.\d\d) dB(| \(Y\)) -> restored (\d+\.\d\d) dB\3$")


@pytest.fixture(scope="module")
def weights():
    return shared_path("data/weights")


@pytest.mark.slow
def test_showcase_writes_the_figure_and_every_network_improves_its_input(weights, tmp_path, capsys):
    out = tmp_path / "figures" / "showcase.png"  # the folder is created
    rc = main(["showcase", "--weights", str(weights), "--out", str(out), "--size", str(SIZE), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err

    with Image.open(out) as figure:
        assert figure.format == "PNG" and figure.mode == "RGB"
        # 3 panels and 4 gaps across; 4 rows of caption + panel and 5 gaps down.
        assert caption_height(SIZE, 3) == 34
        assert figure.size == (3 * SIZE + 4 * GAP, 4 * (SIZE + 34) + 5 * GAP) == (224, 432)
    assert [p.name for p in out.parent.iterdir()] == ["showcase.png"]  # no temporary file left

    lines = captured.out.splitlines()
    assert lines[-1] == f"figure: {out}"
    matches = [LINE.match(line) for line in lines[:-1]]
    assert all(matches), lines
    assert [m[1] for m in matches] == [c.model for c in CASES]
    assert [m[3] for m in matches] == ["", " (Y)", "", ""]  # x4 SR on the luma, as the paper's table
    for m in matches:
        degraded, restored = float(m[2]), float(m[4])
        assert restored > degraded, m[0]


def _error(capsys, *argv: str) -> str:
    rc = main(["showcase", *argv])
    assert rc == 1
    return capsys.readouterr().err


@pytest.mark.parametrize("size", ["0", "-8", "28", "66", "404"])
def test_bad_size_is_refused(weights, tmp_path, capsys, size):
    err = _error(capsys, "--weights", str(weights), "--out", str(tmp_path / "f.png"), "--size", size)
    assert err.startswith("converse-jax showcase: error: --size: ")
    assert f" {size}" in err
    assert not (tmp_path / "f.png").exists()


def test_output_must_be_a_png(weights, tmp_path, capsys):
    err = _error(capsys, "--weights", str(weights), "--out", str(tmp_path / "figure.jpg"))
    assert "error: --out: " in err and ".png" in err
    err = _error(capsys, "--weights", str(weights), "--out", str(tmp_path))
    assert "error: --out: " in err


def test_missing_weights_folder_or_checkpoint_is_named(weights, tmp_path, capsys):
    err = _error(capsys, "--weights", str(tmp_path / "nowhere"), "--out", str(tmp_path / "f.png"))
    assert "error: --weights: " in err and "nowhere" in err

    partial = tmp_path / "partial"
    partial.mkdir()
    for case in CASES[:2]:
        (partial / f"{case.model}.pth").symlink_to(weights / f"{case.model}.pth")
    err = _error(capsys, "--weights", str(partial), "--out", str(tmp_path / "f.png"))
    assert "error: --weights: " in err and "conversenet.pth, converse_usrnet.pth" in err


def test_weights_of_another_network_are_refused(weights, tmp_path, capsys):
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    for case in CASES:
        (swapped / f"{case.model}.pth").symlink_to(weights / f"{case.model}.pth")
    (swapped / "converse_dncnn.pth").unlink()
    (swapped / "converse_dncnn.pth").symlink_to(weights / "conversenet.pth")
    err = _error(capsys, "--weights", str(swapped), "--out", str(tmp_path / "f.png"), "--size", "32")
    assert "error: --weights: " in err and "'conversenet'" in err and "'converse_dncnn'" in err
