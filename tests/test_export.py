"""``converse-jax export`` / ``restore --exported``: the artifact gives the in-process result,
and ``restore --exported`` runs the same loop as ``restore --weights``.

The four released networks are exported at one image shape and a 32-px tile (cpu, cuda and tpu
in one artifact): an image of the exported shape restores like the in-process network on the
whole image, an image of another size like the in-process network tiled the same way. A tiny
network checks the command line, that running an artifact imports no Flax, and -- for both
``--weights`` and ``--exported`` -- the loop's safeguards: an unreadable file among good ones is
skipped with exit 1, a 16-bit PNG is refused the same way, colliding outputs are refused before
anything is written.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from converse_jax.cli.main import main
from converse_jax.inference.export import export_restorer, load_exported
from converse_jax.inference.restorer import Restorer
from converse_jax.models import abstract_variables, get_model
from converse_jax.pretrained import save_variables

TILE, MARGIN, SHAPE = 32, 4, (24, 40)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet"])
def test_exported_equals_in_process(name, tmp_path):
    pth = shared_path(f"data/weights/{name}.pth")
    artifact = load_exported(export_restorer(pth, tmp_path / f"{name}.jax", tile=TILE, tile_margin=MARGIN,
                                             shapes=[SHAPE]))
    assert artifact.platforms == ("cpu", "cuda", "tpu") and artifact.shapes == ((TILE, TILE), SHAPE)
    restorer = Restorer(name, pth)
    assert artifact.tile_mirror == restorer.tile_mirror == (name in ("conversenet", "converse_usrnet"))
    kernel = None
    if name == "converse_usrnet":
        kernel = np.load(shared_path("data/blur_kernels/kernel_1.npy")).astype(np.float32)
    rng = np.random.default_rng(0)
    for shape, options in [(SHAPE, {}), ((36, 44), {"tile": TILE, "tile_margin": MARGIN})]:  # whole; tiled
        x = rng.random((1, *shape, restorer.in_channels), np.float32)
        want = np.asarray(restorer.function(kernel, **options)(x))
        got = np.asarray(artifact.restore(x, kernel))
        assert got.shape == want.shape == (1, shape[0] * restorer.scale, shape[1] * restorer.scale, restorer.in_channels)
        diff = float(np.abs(got - want).max())
        print(f"{name} {shape}: exported vs in-process max |diff| {diff:.3g}")
        assert diff <= 1e-5


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    kwargs = {"features": 4, "num_blocks": 1}
    shapes = abstract_variables(get_model("converse_dncnn", **kwargs))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
    path = tmp_path_factory.mktemp("weights") / "tiny"
    return save_variables(path, variables, arch="converse_dncnn", metadata={"model_kwargs": kwargs})


@pytest.fixture(scope="module")
def tiny_artifact(tiny_store, tmp_path_factory):
    """The tiny network exported at the 30x21 shape and a 16-px tile with 4-px margins."""
    artifact = tmp_path_factory.mktemp("export") / "tiny.jax"
    args = ["export", "--weights", str(tiny_store), "--out", str(artifact), "--tile", "16", "--tile-margin", "4",
            "--shape", "30x21"]
    assert main(args) == 0
    return artifact


def test_cli_export_and_restore_without_flax(tiny_store, tiny_artifact, tmp_path, capsys):
    assert main(["restore", "--exported", str(tiny_artifact), "--info"]) == 0
    info = capsys.readouterr().out
    assert "converse_dncnn (denoise, x1, 1 channel(s))" in info and "16 px, margin 4 px" in info and "30x21" in info
    noisy = np.random.default_rng(1).integers(0, 256, (30, 21), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    script = textwrap.dedent(f"""
        import sys
        from converse_jax.cli.main import main
        assert main(["restore", "--exported", {str(tiny_artifact)!r}, "--quiet",
                     {str(tmp_path / "noisy.png")!r}, {str(tmp_path / "out.png")!r}]) == 0
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("flax", "orbax", "optax")
                       or m.startswith(("converse_jax.models", "converse_jax.nn")))
        print("heavy modules:", heavy)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "heavy modules: []" in done.stdout
    x = noisy[None, :, :, None] / np.float32(255)
    whole = np.asarray(Restorer("converse_dncnn", tiny_store)(x))[0, :, :, 0]  # the exported shape: whole image
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.uint8((np.clip(whole, 0, 1) * 255).round()))


def test_an_artifact_of_a_network_with_mirrored_windows_says_so_and_tiles_like_it(tmp_path, capsys):
    """ConverseNet's record mirrors its windows: the artifact stores it, ``--info`` prints it, the
    margin is checked against the 16 image pixels a 32-px window holds, and an image of another
    size restores like the in-process network tiled the same way."""
    kwargs = {"features": 4, "num_blocks": 1, "num_iterations": 1}
    shapes = abstract_variables(get_model("conversenet", **kwargs))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
    store = save_variables(tmp_path / "tiny", variables, arch="conversenet", metadata={"model_kwargs": kwargs})
    out = tmp_path / "net.jax"
    args = ["export", "--weights", str(store), "--out", str(out), "--tile", "32"]
    assert main([*args, "--tile-margin", "8"]) == 1
    assert "--tile-margin: expected an int >= 0 and < 8, got 8" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--tile-margin", "4"]) == 0
    assert main(["restore", "--exported", str(out), "--info"]) == 0
    assert "32 px, margin 4 px, mirrored" in capsys.readouterr().out
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "in.png")
    restore = ["restore", "--model", "conversenet", "--weights", str(store), "--tile", "32", "--quiet"]
    assert main([*restore, "--tile-margin", "8", str(tmp_path / "in.png"), str(tmp_path / "out.png")]) == 1
    assert "--tile-margin: expected an int >= 0 and < 8, got 8" in capsys.readouterr().err
    x = rng.random((1, 40, 50, 3), np.float32)
    want = Restorer("conversenet", store).function(tile=32, tile_margin=4)(x)
    np.testing.assert_allclose(np.asarray(load_exported(out).restore(x)), np.asarray(want), rtol=0, atol=1e-5)


def test_other_sizes_are_tiled_and_small_ones_are_not_padded(tiny_artifact, tmp_path, capsys):
    data = tmp_path / "in"
    data.mkdir()
    Image.fromarray(np.full((40, 24), 100, np.uint8)).save(data / "big.png")  # >= the tile: tiled
    Image.fromarray(np.full((10, 12), 100, np.uint8)).save(data / "small.png")  # neither tiled nor exported
    assert main(["restore", "--exported", str(tiny_artifact), "--quiet", str(data), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "small.png: 10x12 is neither an exported shape" in err and "--shape 10x12" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.png"]


@pytest.fixture(params=["weights", "exported"])
def restore_args(request, tiny_store, tiny_artifact):
    """The first arguments of ``restore`` with the tiny network in-process or exported."""
    if request.param == "weights":
        return ["restore", "--weights", str(tiny_store), "--quiet"]
    return ["restore", "--exported", str(tiny_artifact), "--quiet"]


def _rgb16(path) -> None:
    """A 16-bit gray PNG (mode I;16) with values above 255 (8-bit conversion would clip it flat)."""
    Image.fromarray(np.arange(30 * 21, dtype=np.uint16).reshape(30, 21) * 90).save(path)


def test_one_loop_skips_unreadable_and_16_bit_files(restore_args, tmp_path, capsys):
    data = tmp_path / "in"
    data.mkdir()
    for seed, name in enumerate(("a.png", "b.png", "c.png")):
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (30, 21), dtype=np.uint8)).save(data / name)
    (data / "b.png").write_bytes((data / "b.png").read_bytes()[:60])  # truncated
    _rgb16(data / "d.png")
    assert Image.open(data / "d.png").mode.startswith("I")
    rc = main([*restore_args, str(data), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    assert f"skipped {data / 'b.png'}:" in err
    assert f"skipped {data / 'd.png'}: image mode 'I;16' (16-bit or float) is not supported" in err
    assert "2 of 4 images could not be read and were skipped" in err


def test_one_loop_refuses_colliding_outputs(restore_args, tmp_path, capsys):
    data = tmp_path / "in"
    data.mkdir()
    img = np.random.default_rng(0).integers(0, 256, (30, 21), dtype=np.uint8)
    Image.fromarray(img).save(data / "x.png")
    Image.fromarray(img).save(data / "x.bmp")
    assert main([*restore_args, str(data), str(tmp_path / "out")]) == 1
    assert "x.bmp and x.png would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing was written


def test_restore_exported_refuses_model_options_and_damaged_files(tiny_store, tiny_artifact, tmp_path, capsys):
    args = ["restore", "--exported", str(tiny_artifact), "--weights", str(tiny_store), "in.png", "out.png"]
    assert main(args) == 1
    assert "--weights cannot be combined with --exported" in capsys.readouterr().err
    assert main(["restore", "--exported", str(tmp_path / "a.jax"), "in.png", "out.png"]) == 1
    assert "a.jax does not exist" in capsys.readouterr().err
    cut = tmp_path / "cut.jax"
    cut.write_bytes(tiny_artifact.read_bytes()[:-100])
    assert main(["restore", "--exported", str(cut), "--info"]) == 1
    assert "cut.jax is truncated or damaged" in capsys.readouterr().err
    assert main(["restore", "--weights", str(tiny_store), "--info"]) == 1
    assert "--info: needs --exported FILE" in capsys.readouterr().err
