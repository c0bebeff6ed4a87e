"""``restore`` of a folder over every local device, and a resumed ``restore``.

Eight simulated CPU devices (``--xla_force_host_platform_device_count=8``, in a subprocess: the
device count is fixed when JAX starts) restore a folder of images of two shapes, batched and
sharded over a ``Mesh`` (:class:`converse_jax.inference.shard.DeviceBatcher`): the PNGs of
``restore`` and ``evaluate`` and ``evaluate``'s ``results.csv`` are the bytes one device writes.  Two processes joined by ``jax.distributed`` (the ``JAX_*`` variables a
cluster sets) split the folder: together they write one process's PNGs, and ``evaluate``'s
``results.csv`` (written by process 0 alone) is one process's, byte for byte.  ``--resume``
restores only the images whose output is missing.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from converse_jax.cli.main import main
from converse_jax.models import abstract_variables, get_model
from converse_jax.pretrained import save_variables

CLI = str(Path(sys.executable).with_name("converse-jax"))
CHECK_SHARDING = """
import jax, numpy as np
from converse_jax.inference.shard import DeviceBatcher
seen = []
batcher = DeviceBatcher(lambda x: (seen.append((x.shape, len(x.sharding.device_set))), x * 2)[1])
done = [batcher.add(i, np.full((4, 6, 1), i, np.float32)) for i in range(3)]
assert done == [[], [], []], done
out = dict(batcher.flush())
assert seen == [((8, 4, 6, 1), 8)], seen
assert sorted(out) == [0, 1, 2] and all(float(out[i][0, 0, 0]) == 2 * i for i in out), out
# ten images of ten shapes: no more than one batch's worth (8) waits; each overflow runs a padded batch
seen.clear()
ran = [len(batcher.add(i, np.full((i + 1, 2, 1), i, np.float32))) for i in range(10)]
assert ran == [0] * 8 + [1, 1] and len(seen) == 2, (ran, seen)
out = dict(batcher.flush())
assert len(seen) == 10 and sorted(out) == list(range(2, 10)) and all(out[i].shape == (i + 1, 2, 1) for i in out)
print("sharded over", jax.local_device_count())
"""


def _tiny_store(path: Path) -> str:
    kwargs = {"features": 4, "num_blocks": 1}
    shapes = abstract_variables(get_model("converse_dncnn", **kwargs))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
    return str(save_variables(path, variables, arch="converse_dncnn", metadata={"model_kwargs": kwargs}))


def _images(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):  # two shapes: 3 of 16x16, 2 of 20x24 (neither fills 8 devices: padded batches)
        Image.fromarray(rng.integers(0, 256, (20, 24) if i % 2 else (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def test_eight_devices_write_the_one_device_pngs(tmp_path):
    weights, images = _tiny_store(tmp_path / "tiny"), _images(tmp_path / "in")
    check = subprocess.run(
        [sys.executable, "-c", CHECK_SHARDING], env=_env(8), capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0 and "sharded over 8" in check.stdout, check.stderr[-3000:]
    for devices in (1, 8):
        script = (
            f"{CLI} restore --weights {weights} --quiet {images} {tmp_path / f'out{devices}'} && "
            f"{CLI} evaluate --weights {weights} --data {images} --out {tmp_path / f'eval{devices}'} --quiet"
        )
        proc = subprocess.run(["bash", "-c", script], env=_env(devices), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "out1").iterdir())
    assert names == [f"{i}.png" for i in range(5)] == sorted(p.name for p in (tmp_path / "out8").iterdir())
    for name in names:
        assert (tmp_path / "out8" / name).read_bytes() == (tmp_path / "out1" / name).read_bytes(), name
        assert (tmp_path / "eval8" / "images" / name).read_bytes() == (
            tmp_path / "eval1" / "images" / name
        ).read_bytes()
    assert (tmp_path / "eval8" / "results.csv").read_text() == (tmp_path / "eval1" / "results.csv").read_text()


def test_resumed_restore_skips_written_outputs(tmp_path, capsys):
    weights, images, out = _tiny_store(tmp_path / "tiny"), _images(tmp_path / "in"), tmp_path / "out"
    assert main(["restore", "--weights", weights, "--quiet", str(images), str(out)]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "3.png").unlink()  # the run was stopped before it wrote 3.png
    (out / "1.png").write_bytes(b"kept as it is")  # an output that exists is not restored again
    capsys.readouterr()
    assert main(["restore", "--weights", weights, "--quiet", "--resume", str(images), str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out / "3.png")]
    assert "resume: 4 of 5 outputs already written, not restored again" in captured.err
    assert (out / "3.png").read_bytes() == first["3.png"] and (out / "1.png").read_bytes() == b"kept as it is"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_a_folder_and_write_one_results_csv(tmp_path):
    weights, images = _tiny_store(tmp_path / "tiny"), _images(tmp_path / "in")

    def commands(tag: str) -> str:  # restore, then evaluate, as a user types them
        return (
            f"{shlex.quote(CLI)} restore --weights {weights} --quiet {images} {tmp_path / ('restored' + tag)} && "
            f"{shlex.quote(CLI)} evaluate --weights {weights} --data {images} --out {tmp_path / ('eval' + tag)} --quiet"
        )

    ports = _free_port(), _free_port()
    procs = [
        subprocess.Popen(
            ["bash", "-c", commands("1")], env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    ]
    for pid in (0, 1):  # each command joins its own 2-process job (JAX_* variables, as a cluster sets them)
        script = " && ".join(
            f"JAX_COORDINATOR_ADDRESS=127.0.0.1:{port} {part}" for port, part in zip(ports, commands("2").split(" && "))
        )
        env = dict(_env(1), JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid))
        procs.append(
            subprocess.Popen(
                ["bash", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    logs = []
    for proc in procs:
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, log[-3000:]
        logs.append(log)
    one, two = tmp_path / "restored1", tmp_path / "restored2"
    for pid, log in zip((0, 1), logs[1:]):  # process i wrote images i, i + 2, ...
        assert [line for line in log.split() if line.startswith(str(two))] == [
            str(two / f"{i}.png") for i in range(pid, 5, 2)
        ]
    assert (
        sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir()) == [f"{i}.png" for i in range(5)]
    )
    for p in one.iterdir():
        assert (two / p.name).read_bytes() == p.read_bytes(), p.name
    csv1, csv2 = (tmp_path / "eval1" / "results.csv").read_text(), (tmp_path / "eval2" / "results.csv").read_text()
    assert csv2 == csv1 and len(csv1.splitlines()) == 1 + 5 + 1  # header, 5 images in file order, average
    assert sorted(p.name for p in (tmp_path / "eval2" / "images").iterdir()) == [f"{i}.png" for i in range(5)]
