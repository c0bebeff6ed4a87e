"""``converse-jax export`` / ``restore --exported``: the jax.export artifact equals the in-process model.

The four released networks are exported at a 16-px tile (cpu, cuda and tpu in one artifact) and
run on an image larger than the tile, against the in-process ``Restorer`` tiled the same way;
a tiny network checks the CLI and that running an artifact imports no Flax.
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
from converse_jax.models import abstract_variables, get_model
from converse_jax.pretrained import save_variables
from converse_jax.inference.restore import Restorer

TILE, OVERLAP = 16, 4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet"])
def test_exported_equals_in_process(name, tmp_path):
    pth = shared_path(f"data/weights/{name}.pth")
    artifact = load_exported(export_restorer(pth, tmp_path / f"{name}.jax", tile=TILE))
    assert artifact.platforms == ("cpu", "cuda", "tpu")
    restorer = Restorer(name, pth)
    kernel = None
    if name == "converse_usrnet":
        kernel = np.load(shared_path("data/blur_kernels/kernel_1.npy")).astype(np.float32)
    x = np.random.default_rng(0).random((1, 24, 40, restorer.in_channels), np.float32)  # 2 x 3 tiles
    want = np.asarray(restorer.function(kernel, tile=TILE, tile_overlap=OVERLAP)(x))
    got = np.asarray(artifact.restore(x, kernel, overlap=OVERLAP))
    assert got.shape == want.shape == (1, 24 * restorer.scale, 40 * restorer.scale, restorer.in_channels)
    diff = float(np.abs(got - want).max())
    print(f"{name}: exported vs in-process max |diff| {diff:.3g}")
    assert diff <= 1e-5


@pytest.fixture
def tiny_store(tmp_path):
    kwargs = {"features": 4, "num_blocks": 1}
    shapes = abstract_variables(get_model("converse_dncnn", **kwargs))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
    return save_variables(tmp_path / "tiny", variables, arch="converse_dncnn", metadata={"model_kwargs": kwargs})


def test_cli_export_and_restore_without_flax(tiny_store, tmp_path, capsys):
    artifact = tmp_path / "tiny.jax"
    assert main(["export", "--weights", str(tiny_store), "--out", str(artifact), "--tile", "16"]) == 0
    assert "tile 16, x1, 1 channel(s)" in capsys.readouterr().out
    noisy = np.random.default_rng(1).integers(0, 256, (30, 21), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    script = textwrap.dedent(f"""
        import sys
        from converse_jax.cli.main import main
        assert main(["restore", "--exported", {str(artifact)!r}, "--quiet",
                     {str(tmp_path / "noisy.png")!r}, {str(tmp_path / "out.png")!r}]) == 0
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("flax", "orbax", "optax")
                       or m.startswith(("converse_jax.models", "converse_jax.nn")))
        print("heavy modules:", heavy)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "heavy modules: []" in done.stdout
    restorer = Restorer("converse_dncnn", tiny_store)
    x = noisy[None, :, :, None] / np.float32(255)
    want = np.uint8((np.clip(np.asarray(restorer.function(tile=16, tile_overlap=4)(x))[0, :, :, 0], 0, 1) * 255).round())
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), want)


def test_restore_exported_refuses_model_options(tiny_store, tmp_path, capsys):
    args = ["restore", "--exported", str(tmp_path / "a.jax"), "--weights", str(tiny_store), "in.png", "out.png"]
    assert main(args) == 1
    assert "--weights cannot be combined with --exported" in capsys.readouterr().err
    assert main(["restore", "--exported", str(tmp_path / "a.jax"), "in.png", "out.png"]) == 1
    assert "a.jax does not exist" in capsys.readouterr().err
