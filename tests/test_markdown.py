"""The README's and the documentation's examples run as written (a doctest for Markdown).

* Every ``python`` block is executed by itself, as written, in a fresh namespace, from an empty
  folder. When each ``print(`` line of a block ends with a comment, the printed lines must be those
  comments (``print(y.shape)  # (2, 64, 64, 3)``).
* Every ``bash`` block that is not marked (see ``tests/markdown.py``) runs as written with
  ``bash -euo pipefail``; the blocks of one page run in order, in one empty folder, so that a block
  may use what the one before it made (a training run, then its evaluation).
* ``# excerpt of PATH`` blocks are parts of a file of the repository: their lines appear in it,
  in order.

Everything runs as a user's session would, on the CPU, with this interpreter's ``python`` and
``converse-jax`` first on ``PATH`` and ``CONVERSE_JAX_CACHE`` holding the official checkpoints from
``../shared``, so that weights named in an example load without the network.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path
from markdown import EXCERPT, REPO_ROOT, Block, blocks, pages

OFFICIAL = ("converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet")
PYTHON_BLOCKS = [b for b in blocks("python") if not EXCERPT.match(b.text)]
EXCERPTS = [b for b in blocks("python") if EXCERPT.match(b.text)]
SHELL_PAGES = [p for p in pages() if any(not b.marked for b in blocks("bash", p))]


@pytest.fixture
def weights_cache(tmp_path) -> Path:
    """A ``CONVERSE_JAX_CACHE`` folder holding the four official checkpoints (as a download leaves them)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in OFFICIAL:
        (cache / f"{name}.pth").symlink_to(shared_path(f"data/weights/{name}.pth"))
    return cache


def _expected_output(block: Block) -> list[str] | None:
    """The comments ending the block's ``print(`` lines, when every such line has one."""
    prints = [line for line in block.text.splitlines() if line.lstrip().startswith("print(")]
    comments = [re.search(r"\)\s+#\s*(.*)$", line) for line in prints]
    if not prints or not all(comments):
        return None
    return [m[1].strip() for m in comments]


def test_the_pages_have_examples():
    """The README holds the five examples; the runner finds them (a parse that finds none fails)."""
    readme = [b for b in blocks(page=REPO_ROOT / "README.md") if b.lang in ("python", "bash") and not b.marked]
    assert len([b for b in readme if b.lang == "python"]) >= 3 and len([b for b in readme if b.lang == "bash"]) >= 2
    assert any(_expected_output(b) for b in PYTHON_BLOCKS)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_python_block_runs_as_written(block, tmp_path, weights_cache, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVERSE_JAX_CACHE", str(weights_cache))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.text, block.id, "exec"), {"__name__": "__main__"})
    expected = _expected_output(block)
    if expected is not None:
        assert out.getvalue().splitlines() == expected, block.id


@pytest.mark.parametrize("page", SHELL_PAGES, ids=[str(p.relative_to(REPO_ROOT)) for p in SHELL_PAGES])
def test_shell_blocks_run_as_written(page, tmp_path, weights_cache):
    cwd = tmp_path / "user"
    cwd.mkdir()
    env = dict(
        os.environ, JAX_PLATFORMS="cpu", CONVERSE_JAX_CACHE=str(weights_cache),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )  # fmt: skip
    env.pop("XLA_FLAGS", None)
    for block in blocks("bash", page):
        if block.marked:
            continue
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, f"{block.id}\n{block.text}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


@pytest.mark.parametrize("block", EXCERPTS, ids=[b.id for b in EXCERPTS])
def test_excerpt_is_in_its_file(block):
    first, *lines = block.text.splitlines()
    source = (REPO_ROOT / EXCERPT.match(first)[1]).read_text().splitlines()
    position = 0
    for line in lines:
        if line.strip() in ("", "..."):
            continue
        while position < len(source) and source[position].strip() != line.strip():
            position += 1
        assert position < len(source), f"{block.id}: not in {EXCERPT.match(first)[1]} (in order): {line!r}"
        position += 1
