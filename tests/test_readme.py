"""The commands the README and the docs show but do not run as written are each run by a test.

``tests/test_markdown.py`` runs the pages' Python blocks and unmarked shell blocks as written. The
rest -- the commands of the blocks marked ``# clone-only:``, ``# accelerator:`` or ``# network:``
and the inline code spans starting with ``converse-jax``, ``python``, ``make``, ``pip`` or
``tensorboard`` (``tests/markdown.py``) -- must each match an entry of :data:`WHERE_EXERCISED`,
which names the test that runs it; a command added without a test fails
:func:`test_every_documented_command_is_exercised`.

* The commands that the other test files do not already run are run here literally, as
  subprocesses from a temporary current directory, so that their relative paths (``runs/...``)
  are taken as a user's; only placeholders are substituted (``$S`` -> a copy of the shared data
  root holding one test image per set, ``HOST0:1234`` -> a local port, ...) and, for training,
  tiny-network overrides appended (later flags win).
* ``.ci/run`` runs the README's two commands unchanged (checked with a stand-in ``make``), then
  builds the docs, runs the checks and builds the distribution.
* The command-line synopsis block (``docs/cli.md``) lists only options the real parser accepts.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path
from markdown import blocks, commands
from PIL import Image

from converse_jax.utils.images import caption_height

CLI = str(Path(sys.executable).with_name("converse-jax"))

# documented command (regex, matched against the whole command) -> the test that exercises it.
WHERE_EXERCISED: dict[str, str] = {
    r"make demo": "tests/test_readme.py::test_demo_command",
    r"make test": "tests/test_readme.py::test_ci_runs_the_readme_commands",
    r'pip install -e (\.|"\.\[test\]")': "tests/test_readme.py::test_ci_runs_the_readme_commands",  # make's
    r"pip install \.": "tests/test_installed.py",  # a wheel of the checkout, installed in a fresh venv
    r'pip install -e "\.\[(tf|tensorboard|bench)\]"': "tests/test_readme.py::test_extras_are_declared",
    r'pip install "converse-jax(\[\w+\])? @ git\+\S+"': "tests/test_readme.py::test_extras_are_declared",  # and test_installed
    r"python -m converse_jax\.cli\.demo( --steps \d+)?": "tests/test_readme.py::test_demo_command",
    r"converse-jax evaluate .*": "tests/test_readme.py::test_evaluate_commands",
    r"converse-jax models": "tests/test_cli.py::test_models_lists_every_registry_name",
    r"converse-jax (convert|evaluate|restore|export|showcase|train)": "tests/test_readme.py::test_cli_synopsis_matches_the_parser",
    r"python -m converse_jax": "tests/test_cli.py::test_python_dash_m_runs_the_cli",
    r"python train\.py .*--coordinator_address=.*": "tests/test_readme.py::test_multi_host_command",
    r"(python train\.py --config=configs/\S+\.py(:\w+)?|converse-jax train --config=\w+) --workdir=\S+( --steps=\d+)?( --config\..*)?": (
        "tests/test_readme.py::test_train_commands"
    ),
    r"export PYTHONPATH=examples|converse-jax \w+ (--config=examples/my_config\.py|--weights runs/mine|--exported mine\.jax) .*"
    r"|python -c \"from converse_jax\.pretrained import load; .*\"": "tests/test_zoo_extension.py",
    r"python benchmarks/(fft_in_jit|train_memory)\.py( .*)?": "tests/test_benchmarks_smoke.py",
    r"make (docs|check|dist)": "tests/test_readme.py::test_ci_fails_when_the_docs_do_not_build",  # CI runs them
    r"python train\.py \.\.\.|converse-jax train --config=NAME( --workdir=DIR)?( --steps=N)?": "tests/test_readme.py::test_train_commands",
    r"tensorboard --logdir WORKDIR": "tests/test_train_outputs.py::test_tensorboard_events_written",
    r"python benchmarks/(converse2d|models|dncnn_layout|pointwise)\.py( .*)?": "tests/test_benchmarks_smoke.py",  # with --quick
    r"python benchmarks/vs_pytorch\.py( .*)?": "tests/test_vs_pytorch.py",  # --quick; skipped without torch
    r"python benchmarks/profile_model\.py( .*)?": "tests/test_profile_model.py",
    r"converse-jax showcase( --weights \S+)? --out \S+": "tests/test_showcase.py",  # with --size 64
    r"converse-jax export --weights \S+ --out \S+( --shape \d+x\d+)+": "tests/test_export.py::test_cli_export_and_restore_without_flax",
    r"converse-jax restore --exported \S+ --info": "tests/test_export.py::test_cli_export_and_restore_without_flax",
    r"python benchmarks/tiling\.py( .*)?": "tests/test_benchmark_tiling.py::test_tiling_benchmark_quick",
    r"python benchmarks/influence\.py( .*)?": "tests/test_benchmark_tiling.py::test_influence_benchmark_quick",
    r"python benchmarks/window_error\.py( .*)?": "tests/test_benchmark_tiling.py::test_window_error_benchmark_quick",
    r"tensorboard --logdir \$RUN/tensorboard": "tests/test_train_outputs.py::test_tensorboard_events_written",
    r"converse-jax restore --exported \S+ \S+ \S+": "tests/test_export.py::test_cli_export_and_restore_without_flax",
}


def _matching(command: str) -> list[str]:
    return [pattern for pattern in WHERE_EXERCISED if re.fullmatch(pattern, command)]


def test_every_documented_command_is_exercised():
    found = commands()
    assert len(found) >= 10, found  # the extraction found the pages' commands
    unexercised = [c for c in found if not _matching(c)]
    assert not unexercised, f"documented commands without a test (add one to WHERE_EXERCISED): {unexercised}"
    for target in set(WHERE_EXERCISED.values()):
        path, _, name = target.partition("::")
        source = (REPO_ROOT / path).read_text()
        assert not name or f"def {name}(" in source, f"{target}: no such test"


def _commands_for(pattern: str) -> list[str]:
    found = [c for c in commands() if pattern in _matching(c)]
    assert found, f"the pages have no command matching {pattern!r}"
    return found


def _run(command: str, cwd: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    if argv[0] == "converse-jax":
        argv[0] = CLI
    elif argv[0] == "python":
        argv[0] = sys.executable
    full_env = dict(os.environ, JAX_PLATFORMS="cpu", **env)
    full_env.pop("XLA_FLAGS", None)
    proc = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


# ----------------------------------------------------------------------------- commands


MAKE_SHIM = """#!/usr/bin/env bash
# A stand-in for make: records its arguments; `make test` exits $TEST_RC; `make demo` prints $DEMO_OUT, exits $DEMO_RC.
echo "$*" >> "$CALLS"
case "$1" in
  test) exit "$TEST_RC" ;;
  demo) printf '%s\n' "training..." "$DEMO_OUT"; exit "$DEMO_RC" ;;
  docs) exit "${DOCS_RC:-0}" ;;
esac
"""


def _run_ci(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``.ci/run`` with a stand-in ``make`` (``env``: its exit statuses and demo output); the make calls."""
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((REPO_ROOT / ".ci" / "run").read_text())
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "make").write_text(MAKE_SHIM)
    (tmp_path / "bin" / "make").chmod(0o755)
    full_env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", CALLS=str(tmp_path / "calls"), **env)
    proc = subprocess.run(["bash", ".ci/run"], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60)
    return proc, (tmp_path / "calls").read_text().splitlines()


@pytest.mark.parametrize(
    "test_rc, demo_out, demo_rc, ok",
    [
        (0, "noisy 20.61 dB -> restored 28.21 dB (+7.60 dB) on camera", 0, True),
        (0, "noisy 20.61 dB -> restored 26.61 dB (+6.00 dB) on camera", 0, True),
        (1, "noisy 20.61 dB -> restored 28.21 dB (+7.60 dB) on camera", 0, False),  # a test failed
        (5, "noisy 20.61 dB -> restored 28.21 dB (+7.60 dB) on camera", 0, False),  # pytest: no tests ran
        (0, "noisy 20.61 dB -> restored 26.00 dB (+5.39 dB) on camera", 0, False),  # below +6 dB
        (0, "noisy 20.61 dB -> restored 28.21 dB (+7.60 dB) on camera", 2, False),  # the demo failed
        (0, "ValueError: Checkpoint path should be absolute", 0, False),  # no result line
    ],
    ids=["pass", "exactly-6dB", "test-fails", "no-tests", "low-gain", "demo-fails", "no-result-line"],
)
def test_ci_runs_the_readme_commands(tmp_path, test_rc, demo_out, demo_rc, ok):
    """``.ci/run`` runs ``make test`` then ``make demo``, unchanged, and fails on any failure or a gain < +6 dB."""
    assert {"make test", "make demo"} <= set(commands())
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^test: \$\(STAMP\)\n\t\$\(PY\) -m pytest .*tests", makefile, flags=re.M)
    assert '-m pip install --quiet -e ".[test,docs,dev]"' in makefile  # the docs' `pip install -e ".[test]"`
    proc, calls = _run_ci(tmp_path, TEST_RC=str(test_rc), DEMO_OUT=demo_out, DEMO_RC=str(demo_rc))
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    expected = ["test"] if test_rc else ["test", "demo"] if not ok else ["test", "demo", "docs", "check", "dist"]
    assert calls == expected  # literally, no extra arguments


def test_ci_fails_when_the_docs_do_not_build(tmp_path):
    """A warning in the docs build (``make docs`` exits non-zero) fails CI before the later steps."""
    demo_out = "noisy 20.61 dB -> restored 28.21 dB (+7.60 dB) on camera"
    proc, calls = _run_ci(tmp_path, TEST_RC="0", DEMO_OUT=demo_out, DEMO_RC="0", DOCS_RC="2")
    assert proc.returncode != 0
    assert calls == ["test", "demo", "docs"]
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^docs: .*\n\t.*sphinx-build -W --keep-going .* docs docs/_build/html$", makefile, flags=re.M)


def test_extras_are_declared():
    """``pip install -e ".[tf]"`` / ``".[tensorboard]"`` (not run: they download hundreds of MB): they exist."""
    import tomllib

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("tensorflow") for req in extras["tf"]), extras["tf"]
    assert any(req.startswith("tensorboard") for req in extras["tensorboard"]), extras["tensorboard"]
    assert any(req.startswith("torch") for req in extras["bench"]), extras["bench"]
    for command in _commands_for(r'pip install -e "\.\[(tf|tensorboard|bench)\]"'):
        assert re.search(r"\[(\w+)\]", command)[1] in extras
    url = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    for command in _commands_for(r'pip install "converse-jax(\[\w+\])? @ git\+\S+"'):
        assert command.endswith(f'@ git+{url}"'), command  # the repository the notebooks install from
        extra = re.search(r"\[(\w+)\]", command)
        assert extra is None or extra[1] in extras, command


def test_demo_command(tmp_path):
    """``make demo`` is ``python -m converse_jax.cli.demo``; run from an empty folder with its default
    (relative) paths and ``--steps 2`` to keep CI short (CI also runs the full ``make demo``)."""
    assert re.search(r"^demo: \$\(STAMP\)\n\t\$\(PY\) -m converse_jax\.cli\.demo$", (REPO_ROOT / "Makefile").read_text(), re.M)
    _commands_for(r"python -m converse_jax\.cli\.demo( --steps \d+)?")
    proc = _run("python -m converse_jax.cli.demo --steps 2", tmp_path)
    match = re.search(r"noisy (\S+) dB -> restored (\S+) dB \((\S+) dB\) on camera", proc.stdout)
    assert match, proc.stdout
    assert abs(float(match[1]) - 20.61) < 0.2  # the official sigma-25 degradation of camera
    out = tmp_path / "demo_out"
    assert (out / "run" / "checkpoints" / "2").is_dir()  # the relative default workdir
    assert (out / "val_psnr.png").stat().st_size > 0
    panels = np.asarray(Image.open(out / "denoise.png"))
    assert panels.shape[0] > 512 and panels.shape[1] == 3 * 512 + 2 * 8  # label strip above the 512x512 panels
    strip = panels[: panels.shape[0] - 512]
    assert (strip < 128).any() and (strip == 255).mean() > 0.5  # dark text on white


@pytest.fixture(scope="module")
def small_shared(tmp_path_factory) -> Path:
    """A data root laid out like ``../shared/data`` with one image per test set."""
    root = tmp_path_factory.mktemp("S")
    for name in ("weights", "blur_kernels"):
        (root / name).symlink_to(shared_path(f"data/{name}"))
    for testset, image in (("Set12", "01.png"), ("CSet5", "butterfly.png")):
        (root / "testsets" / testset).mkdir(parents=True)
        (root / "testsets" / testset / image).symlink_to(shared_path(f"data/testsets/{testset}/{image}"))
    return root


def _official(name: str, image: str) -> dict[str, str]:
    with open(shared_path(f"reference/{name}"), newline="") as f:
        return next(row for row in csv.DictReader(f) if row["image"] == image)


def _check_dncnn(out: Path, data: Path) -> None:
    """Set12 01.png: PSNR/SSIM as the official code's; noisy | restored | clean panel."""
    from converse_jax.protocol import denoise_input, single2uint

    with open(out / "results.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["image", "psnr", "ssim"] and table[1][0] == "01.png" and table[2] == ["average", *table[1][1:]]
    ref = _official("official_converse_dncnn_Set12_sigma25.csv", "01.png")
    assert float(table[1][1]) == pytest.approx(float(ref["psnr"]), abs=PSNR_TOL)
    assert float(table[1][2]) == pytest.approx(float(ref["ssim"]), abs=SSIM_TOL)
    panel = np.asarray(Image.open(out / "images" / "01.png"))[caption_height(256):]  # under the captions
    clean = np.asarray(Image.open(data / "Set12" / "01.png").convert("L"))
    assert panel.shape == (256, 3 * 256 + 2 * 4)
    np.testing.assert_array_equal(panel[:, :256], single2uint(denoise_input(clean[..., None], 25))[..., 0])
    np.testing.assert_array_equal(panel[:, -256:], clean)


def _check_srresnet(out: Path, data: Path) -> None:
    """CSet5 butterfly x4: RGB and Y PSNR/SSIM as the official code's; LR | SR | HR panel."""
    from converse_jax.protocol import single2uint, sr_input

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "psnr", "ssim", "psnr_y", "ssim_y"]
    assert [r["image"] for r in rows] == ["butterfly.png", "average"]
    ref = _official("official_converse_srresnet_CSet5_x4.csv", "butterfly.png")
    for column, tol in (("psnr", PSNR_TOL), ("psnr_y", PSNR_TOL), ("ssim", SSIM_TOL), ("ssim_y", SSIM_TOL)):
        assert float(rows[0][column]) == pytest.approx(float(ref[column]), abs=tol), column
    panel = np.asarray(Image.open(out / "images" / "butterfly.png"))[caption_height(256):]  # under the captions
    hr = np.asarray(Image.open(data / "CSet5" / "butterfly.png").convert("RGB"))
    assert panel.shape == (256, 3 * 256 + 2 * 4, 3)
    np.testing.assert_array_equal(panel[::4, :256:4], single2uint(sr_input(hr, 4)[1]))
    np.testing.assert_array_equal(panel[:, -256:], hr)


def _check_usrnet(out: Path, data: Path) -> None:
    """CSet5 butterfly, kernel 1, sigma 2.55: non-blind deblurring lands far above the input."""
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == ["butterfly.png", "average"]
    assert float(rows[0]["psnr"]) > 30  # the blurred input scores ~20 dB (CSet5 average: 35.04)


PSNR_TOL = 0.01  # dB, per image, against the official code re-run (shared/reference)
SSIM_TOL = 5e-4


def test_evaluate_commands(small_shared, tmp_path):
    """The table commands, literally, with ``$S`` holding one image per set: per-image results
    as the official code's (the full tables are the same commands on the full sets)."""
    commands = [c for c in _commands_for("converse-jax evaluate .*") if "--model" in c]  # the tables (zoo.md's run: test_zoo_extension)
    checks = {"converse_dncnn": _check_dncnn, "converse_srresnet": _check_srresnet, "converse_usrnet": _check_usrnet}
    assert sorted(shlex.split(c)[shlex.split(c).index("--model") + 1] for c in commands) == sorted(checks)
    for command in commands:
        command = command.replace("$S", str(small_shared))
        _run(command, tmp_path)  # runs/... relative to the current directory
        argv = shlex.split(command)
        checks[argv[argv.index("--model") + 1]](tmp_path / argv[argv.index("--out") + 1], small_shared / "testsets")


TINY_TRAINING = (
    "--config.model_overrides.features=4",
    "--config.model_overrides.num_blocks=1",
    "--config.batch_size=2",
    "--config.data.num_threads=0",
    "--config.data.val_max_images=1",
    "--config.data.val_crop=32",
    "--config.num_train_steps=2",
    "--config.lr_milestones=(1,)",
    "--config.log_every_steps=1",
    "--config.eval_every_steps=2",
    "--config.checkpoint_every_steps=2",
)


def _assert_trained(workdir: Path, steps: int = 2) -> None:
    assert (workdir / "checkpoints" / str(steps)).is_dir(), sorted(p.name for p in workdir.rglob("*"))[:20]
    assert (workdir / "metrics.jsonl").read_text().count('"step"') >= steps


def test_train_commands(tmp_path):
    """The single-host training commands, literally, with tiny-network overrides appended: each from
    its own folder with the README's relative paths (``runs/...``; the data folders made relative;
    ``--steps=N`` made 2, the tiny run's length); ``python train.py`` from a folder laid out like a
    clone (``train.py`` and ``configs/``)."""
    pattern = r"(python train\.py --config=configs/\S+\.py(:\w+)?|converse-jax train --config=\w+) --workdir=\S+( --steps=\d+)?( --config\..*)?"
    commands = [c for c in _commands_for(pattern) if "=NAME" not in c]  # placeholders are not commands
    assert {c.split()[0] for c in commands} == {"python", "converse-jax"}, commands
    for i, command in enumerate(commands):
        cwd = tmp_path / f"user{i}"
        (cwd / "data" / "DIV2K_train_HR").mkdir(parents=True)
        for image in ("baby.png", "bird.png"):
            (cwd / "data" / "DIV2K_train_HR" / image).symlink_to(shared_path(f"data/testsets/CSet5/{image}"))
        (cwd / "data" / "Set5").symlink_to(shared_path("data/testsets/CSet5"))
        if command.startswith("python train.py"):
            for name in ("train.py", "configs"):
                (cwd / name).symlink_to(REPO_ROOT / name)
        command = re.sub(r"--steps=\d+", "--steps=2", command.replace("/data/", "data/"))
        patch = 24 if "srresnet" in command else 12
        _run(" ".join([command, *TINY_TRAINING, f"--config.data.patch_size={patch}"]), cwd)
        _assert_trained(cwd / re.search(r"--workdir=(\S+)", command)[1])


def test_multi_host_command(tmp_path):
    """The multi-host line: two processes on this machine, one CPU device each."""
    (command,) = _commands_for(r"python train\.py .*--coordinator_address=.*")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tmp_path / "run"
    command = (
        command.replace("--config=...", "--config=configs/zoo.py:converse_dncnn")
        .replace("--workdir=...", f"--workdir={workdir}")
        .replace("HOST0:1234", f"127.0.0.1:{port}")
        .replace("--num_processes=N", "--num_processes=2")
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, *shlex.split(command.replace("--process_id=I", f"--process_id={pid}"))[1:],
             *TINY_TRAINING, "--config.data.patch_size=12"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for pid in (0, 1)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    _assert_trained(workdir)
    for pid, log in enumerate(logs):
        assert f"jax.distributed: process {pid} of 2, 1 local / 2 global devices" in log, log[-2000:]
        assert "devices: 2 x cpu, 2 processes" in log


def test_cli_synopsis_matches_the_parser():
    """Each ``converse-jax SUB ... --option`` of the synopsis block is accepted by ``SUB``'s parser
    (``train``: the absl flags of :mod:`converse_jax.cli.train`)."""
    from absl import flags

    from converse_jax.cli.main import build_parser
    from converse_jax.cli.train import define_flags

    synopsis = next(b.text for b in blocks("") if b.text.startswith("converse-jax "))
    subparsers = next(a for a in build_parser()._actions if a.choices and "restore" in a.choices).choices
    entries = re.split(r"^converse-jax ", synopsis, flags=re.M)[1:]
    assert sorted(e.split()[0] for e in entries) == sorted(subparsers)
    train_flags = flags.FlagValues()
    define_flags(train_flags, ["converse-jax train"])
    for entry in entries:
        sub = entry.split()[0]
        if sub == "train":
            accepted = {f"--{name}" for name in train_flags}
        else:
            accepted = {opt for action in subparsers[sub]._actions for opt in action.option_strings}
        shown = set(re.findall(r"--[a-z0-9_-]+", entry))
        assert shown <= accepted, (sub, shown - accepted)
