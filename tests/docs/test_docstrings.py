"""Every public docstring is rendered: no docrep placeholder (``%(name)s``) is left in it."""

from __future__ import annotations

import inspect

import pytest

import sc_sed

PACKAGES = ("tl", "pl", "data", "datasets", "baselines", "model")


def _public_objects():
    """(name, object) for sc_sed.__all__, each public package's __all__, and class methods."""
    import importlib

    seen = {"sc_sed": sc_sed}
    for name in sc_sed.__all__:
        seen[f"sc_sed.{name}"] = getattr(sc_sed, name)
    for package in PACKAGES:
        module = importlib.import_module(f"sc_sed.{package}")
        seen[module.__name__] = module
        for name in module.__all__:
            seen[f"{module.__name__}.{name}"] = getattr(module, name)
    for qualname, obj in list(seen.items()):
        if inspect.isclass(obj):
            for attr, member in inspect.getmembers(obj):
                if not attr.startswith("_") and (callable(member) or isinstance(member, property)):
                    seen[f"{qualname}.{attr}"] = member
    return sorted(seen.items())


def test_the_walk_covers_the_model_and_its_methods():
    names = dict(_public_objects())
    for name in ("sc_sed.SEDModel", "sc_sed.SEDModel.train", "sc_sed.SEDModel.generate",
                 "sc_sed.tl.evaluate", "sc_sed.pl.history", "sc_sed.data.from_coo"):  # fmt: skip
        assert name in names


@pytest.mark.parametrize(("name", "obj"), _public_objects(), ids=lambda x: x if isinstance(x, str) else "")
def test_no_docrep_placeholder_left(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert "%(" not in doc, f"{name}'s docstring holds an unfilled docrep placeholder"
