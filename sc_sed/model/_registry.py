"""Read a saved scvi-tools registry (a plain dict) the way scvi-tools' models do.

A model reads its registry through :meth:`scvi.model.base.BaseModelClass.get_state_registry`
and :meth:`~scvi.model.base.BaseModelClass.get_setup_arg`. Several helpers here work on a
registry *before* a model exists (loading, validating a folder, MuData set-up), so they use
these two functions, which do the same on the dict. The two key names are scvi-tools'
(its private ``scvi.data._constants``); they are spelled once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIELD_REGISTRIES_KEY = "field_registries"
STATE_REGISTRY_KEY = "state_registry"
SETUP_ARGS_KEY = "setup_args"


def state_registry(registry: Mapping[str, Any], registry_key: str) -> Mapping[str, Any]:
    """Return the state registry of the field registered under ``registry_key``.

    Parameters
    ----------
    registry
        A model's ``registry_`` (or a saved one).
    registry_key
        The field's registry key, e.g. ``scvi.REGISTRY_KEYS.LABELS_KEY``.

    Returns
    -------
    The field's state registry (category mappings, column names, statistics).
    """
    return registry[FIELD_REGISTRIES_KEY][registry_key][STATE_REGISTRY_KEY]


def setup_arg(registry: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Return the value given to ``setup_anndata``/``setup_mudata`` for ``name``.

    Parameters
    ----------
    registry
        A model's ``registry_`` (or a saved one).
    name
        The set-up argument, e.g. ``"labels_key"``.
    default
        Returned when the argument was not recorded.

    Returns
    -------
    The recorded value, or ``default``.
    """
    return registry[SETUP_ARGS_KEY].get(name, default)
