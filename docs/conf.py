"""Sphinx configuration of the converse-jax documentation (``make docs``; CI builds it with ``-W``).

The pages are the Markdown files of this folder (MyST), the notebooks of ``notebooks/`` (rendered
by myst-nb, not executed: ``tests/test_notebooks.py`` runs them) and the API reference generated
from the docstrings (autodoc + napoleon for their Google-style sections, autosummary).
"""

from pathlib import Path

import converse_jax

project = "converse-jax"
author = "the converse-jax authors"
copyright = "2026, the converse-jax authors"
release = version = converse_jax.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "notebooks/.ipynb_checkpoints"]

# MyST: heading anchors so that [text](page.md#a-heading) links resolve; $...$ maths.
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "colon_fence"]
nb_execution_mode = "off"

# The API reference: every public module; a member is documented in the module that defines it
# (not again where a package's __init__ re-exports it).
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, not a second description of each attribute

html_theme = "sphinx_book_theme"
html_title = "converse-jax"
html_theme_options = {"repository_url": "https://github.com/converse-jax/converse-jax", "use_repository_button": True}


def _list_other_pages(app, docname, source):
    """Pages of this folder that no toctree of ``index.md`` names (e.g. ones added by later work) join
    its last guide toctree, so that adding a page needs no change here."""
    if docname != "index":
        return
    listed = {line.strip() for line in source[0].splitlines()}
    others = sorted(p.stem for p in Path(app.srcdir).glob("*.md") if p.stem not in listed | {"index", "api"})
    source[0] = source[0].replace("\ncli\n", "\ncli\n" + "".join(f"{name}\n" for name in others), 1)


def setup(app):
    app.connect("source-read", _list_other_pages)
