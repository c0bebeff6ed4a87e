"""API documentation: every module has a docstring, and every public function and class (the
``__all__`` of each package and module) has one with a runnable example.

The examples are doctests (``>>>``); ``make test`` runs them with ``--doctest-modules
converse_jax``, so an example that stops being true fails CI.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import converse_jax

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(converse_jax.__path__, "converse_jax.") if m.name != "converse_jax.__main__"
)


def _public_objects() -> dict[str, object]:
    """``{'module.name': obj}`` for the functions and classes a package or module exports."""
    found = {}
    for name in ["converse_jax", *MODULES]:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith("converse_jax"):
                found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return found


PUBLIC = _public_objects()


def test_the_public_api_is_found():
    assert len(PUBLIC) > 100, sorted(PUBLIC)  # the packages' __all__ were read
    assert "converse_jax.ops.converse2d.converse2d" in PUBLIC


@pytest.mark.parametrize("name", MODULES)
def test_every_module_has_a_docstring(name):
    doc = importlib.import_module(name).__doc__
    assert doc and len(doc.strip()) > 40, f"{name}: module docstring missing or too short"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_object_has_a_docstring_with_an_example(name):
    doc = inspect.getdoc(PUBLIC[name]) or ""
    assert doc, f"{name}: no docstring"
    assert ">>>" in doc, f"{name}: the docstring has no doctest example (>>>)"
