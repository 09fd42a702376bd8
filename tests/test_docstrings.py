"""Every public function and class (the ``__all__`` of each subpackage) has a docstring; the
API reference (mkdocs, mkdocstrings) is built from them."""

import importlib
import inspect

import pytest

PACKAGES = [
    "so3", "so3.grids", "so3.distributions", "so3.conventions", "fourier", "ctf", "noise",
    "atoms", "projection", "imaging", "simulate", "reconstruction", "resolution", "fitting",
    "pipelines", "io",
]  # fmt: skip


@pytest.mark.parametrize("name", PACKAGES)
def test_public_objects_have_docstrings(name):
    module = importlib.import_module(f"cryomath.{name}")
    missing = [
        member
        for member in getattr(module, "__all__", [])
        if (inspect.isfunction(obj := getattr(module, member)) or inspect.isclass(obj))
        and not (inspect.getdoc(obj) or "").strip()
    ]
    assert not missing, f"cryomath.{name}: no docstring for {missing}"
