"""The notebooks as stored: no outputs, and nothing that only a clone has.

They are executed top to bottom, from the installed wheel in a folder outside the repository, by
``tests/test_installed.py::test_notebook_runs_from_the_installed_wheel``.  Here: each first code
cell installs one variable, ``INSTALL``, defined identically in both (a ``git+`` URL that is
``pyproject.toml``'s ``[project.urls]`` repository), only when ``converse_jax`` is not importable;
no cell edits ``sys.path`` or reads the repository's or ``../shared``'s files.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
from conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def _code(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def test_both_notebooks_are_found():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_train_on_accelerators.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} is stored with outputs"


def test_install_cell_is_the_same_in_both_and_names_the_project_url():
    first_cells = {path.name: _code(path)[0] for path in NOTEBOOKS}
    assert len(set(first_cells.values())) == 1, "the install cells differ"
    cell = next(iter(first_cells.values()))
    (install,) = re.findall(r'^INSTALL = "([^"]+)"$', cell, flags=re.M)
    urls = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert install.removeprefix("git+") in urls.values(), (install, urls)
    assert 'if importlib.util.find_spec("converse_jax") is None:' in cell  # nothing installed when importable
    assert '"pip", "install", "-q", INSTALL' in cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_needs_no_clone(path: Path):
    code = "\n".join(_code(path))
    for clone_only in ("sys.path", "shared/", "from configs", "import configs", "repo_root", "../"):
        assert clone_only not in code, f"{path.name} uses {clone_only!r}"
