"""The registry of an SED model set up from a LightningDataModule instead of an AnnData.

scvi-tools 1.4 builds a model for a custom data module from the module's own registry,
``SCVI(adata=None, registry=datamodule.registry)``: that registry carries what SCVI needs
(feature names, category mappings). SED needs more: per-feature statistics (which
features are ever non-zero, how often), the longest row and whether the values are integer
counts, which scvi-tools computes from an in-memory AnnData. Here they are computed in one
streaming pass over the data module's training and validation minibatches
(:class:`~sc_sed.data.RunningMatrixStats`, one minibatch in memory at a time) and written
into a registry of the same layout as :meth:`~sc_sed.SEDModel.setup_anndata` writes, so
the model, saving and loading work unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import scvi
from scvi import REGISTRY_KEYS

from sc_sed.data import RunningMatrixStats
from sc_sed.train import condition_block, data_block, stream_batches, to_scipy

from ._fields import SparseLayerField, validate_stats

SETUP_METHOD_NAME = "setup_datamodule"
CONDITION_KEYS = {REGISTRY_KEYS.LABELS_KEY: "labels_key", REGISTRY_KEYS.BATCH_KEY: "batch_key"}


def anndata_setup_method(registry: Mapping[str, Any]) -> str:
    """Name of the method that sets an AnnData up from ``registry`` (with ``source_registry``).

    A data module's registry records setup_anndata's arguments, so an AnnData with the same
    features (and covariate columns) is set up with ``setup_anndata``.
    """
    method = registry.get("setup_method_name", "setup_anndata")
    return "setup_anndata" if method == SETUP_METHOD_NAME else method


def _module_registry(datamodule: pl.LightningDataModule) -> Mapping[str, Any]:
    registry = getattr(datamodule, "registry", None)
    return registry if isinstance(registry, Mapping) else {}


def _var_names(
    datamodule: pl.LightningDataModule, var_names: Sequence[str] | None
) -> np.ndarray | None:
    """Feature names: given, else the module's ``var_names``, else its registry's columns."""
    if var_names is None:
        var_names = getattr(datamodule, "var_names", None)
    if var_names is None:
        fields = _module_registry(datamodule).get("field_registries", {})
        x_state = fields.get(REGISTRY_KEYS.X_KEY, {}).get("state_registry", {})
        var_names = x_state.get("column_names")
    if var_names is None:
        return None
    names = np.asarray([str(v) for v in var_names], dtype=object)
    if len(set(names)) != names.size:
        msg = "var_names has duplicates; SED needs one name per feature."
        raise ValueError(msg)
    return names


def _inferred_conditions(datamodule: pl.LightningDataModule) -> dict[str, tuple[str, list]]:
    """Labels and batch of an scvi-tools data module registry, when it has their categories."""
    registry = _module_registry(datamodule)
    fields, args = registry.get("field_registries", {}), registry.get("setup_args", {})
    out = {}
    for key, arg in CONDITION_KEYS.items():
        state = fields.get(key, {}).get("state_registry", {})
        mapping = state.get("categorical_mapping")
        if args.get(arg) is None or mapping is None or len(mapping) == 0:
            continue
        encoder = getattr(datamodule, f"{key}_encoder", None)
        if key == REGISTRY_KEYS.BATCH_KEY and hasattr(encoder, "classes_"):
            # scvi-tools' TileDBDataModule lists the batch labels in order of appearance in
            # its registry but codes them with a LabelEncoder (sorted): the codes' categories
            # are the encoder's classes.
            mapping = encoder.classes_
        out[key] = (str(state.get("original_key") or args[arg]), list(mapping))
    return out


def _conditions(
    datamodule: pl.LightningDataModule, conditions: Mapping[str, Sequence] | None
) -> dict[str, tuple[str, list]]:
    if conditions is None:
        return _inferred_conditions(datamodule)
    bad = [k for k in conditions if k not in CONDITION_KEYS]
    if bad:
        msg = (
            f"conditions keys must be minibatch keys among {list(CONDITION_KEYS)}, got {bad}; "
            "pass e.g. conditions={'labels': ['B cell', 'T cell']}."
        )
        raise ValueError(msg)
    out = {}
    for key, categories in conditions.items():
        categories = list(categories)
        if not categories:
            msg = f"conditions[{key!r}] lists no categories; list them in code order."
            raise ValueError(msg)
        out[key] = (key, categories)
    return out


def stream_stats(
    datamodule: pl.LightningDataModule,
    n_vars: int | None,
    conditions: Mapping[str, tuple[str, list]],
) -> dict:
    """Statistics of all minibatches of the training and validation loaders, in one pass.

    ``n_vars`` None takes the number of features from the first minibatch.
    """
    acc = None
    for batch in stream_batches(datamodule):
        x = data_block(batch)
        acc = acc or RunningMatrixStats(x.shape[1] if n_vars is None else n_vars)
        if x.shape[1] != acc.n_vars:
            msg = (
                f"The data module yields {x.shape[1]} features per row, expected {acc.n_vars} "
                "(from var_names or earlier minibatches); pass one name per feature."
            )
            raise ValueError(msg)
        for key, (_, categories) in conditions.items():
            condition_block(batch, key, len(categories))
        acc.update(to_scipy(x))
    if acc is None or acc.n_obs == 0:
        msg = "The data module's loaders yielded no rows; SED needs rows to train."
        raise ValueError(msg)
    return validate_stats(acc.result(), "The data module's minibatches")


def _field(state: dict, summary: dict, attr_key: str | None = None) -> dict:
    data = {"attr_name": "obs", "attr_key": attr_key} if attr_key else {}
    return {"data_registry": data, "state_registry": state, "summary_stats": summary}


def datamodule_registry(
    datamodule: pl.LightningDataModule,
    model_name: str,
    *,
    var_names: Sequence[str] | None = None,
    conditions: Mapping[str, Sequence] | None = None,
) -> dict:
    """Build an SED registry for ``datamodule`` (see :meth:`SEDModel.setup_datamodule`)."""
    names = _var_names(datamodule, var_names)
    conds = _conditions(datamodule, conditions)
    stats = stream_stats(datamodule, None if names is None else names.size, conds)
    if names is None:
        names = np.asarray([str(i) for i in range(stats["n_vars"])], dtype=object)
    x_summary = {
        "n_vars": names.size,
        "n_cells": stats["n_obs"],
        "max_nonzero": stats["max_nonzero"],
    }
    x_state = {
        "n_obs": stats["n_obs"],
        "n_vars": names.size,
        "column_names": names,
        SparseLayerField.STATS_KEY: stats,
    }
    fields = {
        REGISTRY_KEYS.X_KEY: {
            **_field(x_state, x_summary),
            "data_registry": {"attr_name": "X", "attr_key": None},
        }
    }
    setup_args: dict[str, Any] = {"layer": None, "categorical_covariate_keys": None}
    for key, arg in CONDITION_KEYS.items():
        obs_key, categories = conds.get(key, (None, []))
        setup_args[arg] = obs_key
        state = {
            "categorical_mapping": np.asarray(categories, dtype=object),
            "original_key": obs_key,
        }
        fields[key] = _field(state, {f"n_{key}": max(1, len(categories))}, f"_scvi_{key}")
    fields[REGISTRY_KEYS.CAT_COVS_KEY] = _field({}, {"n_extra_categorical_covs": 0})
    return {
        "scvi_version": scvi.__version__,
        "model_name": model_name,
        "setup_args": setup_args,
        "field_registries": fields,
        "setup_method_name": SETUP_METHOD_NAME,
    }
