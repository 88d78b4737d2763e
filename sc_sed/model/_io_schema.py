"""Schema of ``sc_sed_model.json``: every key and type a model folder must have.

:func:`check_document` runs on the decoded document before anything is built from it, so
a hand-edited, truncated or hostile file is refused with a message naming the key.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from sc_sed.data import MatrixStats

from ._io_limits import (
    DERIVED_MODULE_ARGUMENTS,
    MAX_CATEGORIES,
    MAX_FEATURES,
    MAX_ROWS,
    VALUE_LIKELIHOODS,
    integer,
    number,
    parameter_problems,
    plain,
)
from ._registry import (
    FIELD_REGISTRIES_KEY,
    SETUP_ARGS_KEY,
    STATE_REGISTRY_KEY,
    state_registry,
)

FORMAT = "sc_sed.SEDModel"
FORMAT_VERSION = 1

#: Top-level keys of the document.
DOCUMENT_KEYS = (
    "format",
    "format_version",
    "model_class",
    "versions",
    "init_params",
    "registry",
    "attributes",
    "history",
)
#: Attributes kept elsewhere (registry, init parameters, history: own keys of the document;
#: training var/uns: the metadata .h5ad; condition codes: the tensor file).
SPECIAL_ATTRIBUTES = frozenset(
    {
        "registry_",
        "init_params_",
        "history_",
        "training_var_",
        "training_uns_",
        "train_condition_codes_",
    }
)
_SETUP_METHODS = ("setup_anndata", "setup_mudata", "setup_datamodule")
_STATS_TYPES = {
    "n_obs": int,
    "n_vars": int,
    "max_nonzero": int,
    "mean_nonzero": float,
    "is_integer": bool,
    "has_negative": bool,
    "min_value": float,
    "n_nonfinite": int,
}
_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]*_$")


class SchemaError(ValueError):
    """The document does not match the schema; the message names the key."""


def _fail(where: str, problem: str) -> None:
    raise SchemaError(f"{where}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float | np.floating)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _dict(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        _fail(where, f"expected an object, found {type(value).__name__}")
    return value


def _index_array(value: Any, where: str, n_obs: int) -> None:
    if value is None:
        return
    ok = isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu"
    if not ok:
        _fail(where, "expected a 1-D integer array or null")
    if value.size and (value.min() < 0 or value.max() >= n_obs):
        _fail(where, f"row indices must lie in [0, {n_obs})")


def check_document(doc: Any, model_cls: type, allowed_classes: list[str]) -> None:
    """Validate a decoded ``sc_sed_model.json`` document (raises :class:`SchemaError`)."""
    doc = _dict(doc, "document")
    missing = [k for k in DOCUMENT_KEYS if k not in doc]
    extra = [k for k in doc if k not in DOCUMENT_KEYS]
    if missing or extra:
        _fail("document", f"missing keys {missing}, unknown keys {extra}")
    if doc["model_class"] not in (model_cls.__name__, *allowed_classes):
        _fail("model_class", f"{doc['model_class']!r} cannot be loaded as {model_cls.__name__}")
    versions = _dict(doc["versions"], "versions")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        _fail("versions", "expected package names mapped to version strings")
    registry = check_registry(doc["registry"], model_cls)
    check_init_params(doc["init_params"], model_cls, n_features=n_features(registry))
    check_attributes(doc["attributes"], model_cls, _n_obs(registry))
    check_history(doc["history"])


def _n_obs(registry: Mapping) -> int:
    return int(state_registry(registry, "X")["sc_sed_stats"]["n_obs"])


def n_features(registry: Mapping) -> int:
    """Return the number of features of a checked registry (all data blocks together)."""
    from ._mudata import data_keys

    return sum(
        int(state_registry(registry, k)["sc_sed_stats"]["n_vars"]) for k in data_keys(registry)
    )


def feature_names(registry: Mapping) -> list[np.ndarray]:
    """Return the feature names of each data block of a checked registry, as strings."""
    from ._mudata import data_keys

    return [
        np.asarray(state_registry(registry, k)["column_names"]).astype(str)
        for k in data_keys(registry)
    ]


_SETUP_ARG_CHECKS: dict[str, str] = {
    "layer": "name",
    "labels_key": "name",
    "batch_key": "name",
    "categorical_covariate_keys": "names",
    "modalities": "names",
}


def _check_setup_args(args: Mapping) -> None:
    for key, value in args.items():
        where = f"registry/setup_args/{key}"
        kind = _SETUP_ARG_CHECKS.get(key)
        if kind == "name" and not (value is None or isinstance(value, str)):
            _fail(where, f"expected a string or null, found {value!r:.80}")
        elif kind == "names" and not (
            value is None
            or isinstance(value, list | tuple)
            and len(value) <= 1024
            and all(isinstance(v, str) for v in value)
        ):
            _fail(where, f"expected a list of strings or null, found {value!r:.80}")
        elif kind is None and (problem := plain(value)):
            _fail(where, f"expected {problem}, found {value!r:.80}")


def check_registry(registry: Any, model_cls: type) -> Mapping:
    """Validate the parts of the scvi-tools registry the model reads."""
    from ._conditions import condition_specs
    from ._datamodule import anndata_setup_method
    from ._mudata import data_keys

    registry = _dict(registry, "registry")
    method = registry.get("setup_method_name")
    if method not in _SETUP_METHODS:
        _fail("registry/setup_method_name", f"expected one of {_SETUP_METHODS}, found {method!r}")
    args = _dict(registry.get(SETUP_ARGS_KEY), "registry/setup_args")
    setup = getattr(model_cls, anndata_setup_method(registry))
    accepted = set(inspect.signature(setup).parameters) - {"kwargs"}
    unknown = [k for k in args if k not in accepted]
    if unknown:
        _fail("registry/setup_args", f"unknown arguments {unknown} of {method}")
    _check_setup_args(args)
    fields = _dict(registry.get(FIELD_REGISTRIES_KEY), "registry/field_registries")
    for key in data_keys(registry):
        _check_data_field(fields.get(key), f"registry/field_registries/{key}")
    try:
        specs = condition_specs(registry)
    except (KeyError, TypeError, AttributeError) as err:
        _fail("registry/field_registries", f"a registered covariate is incomplete ({err!r})")
    for spec in specs:
        _check_categories(spec, fields)
    return registry


def _check_categories(spec: Any, fields: Mapping) -> None:
    where = f"registry/field_registries/{spec.registry_key} ({spec.obs_key!r} categories)"
    if not isinstance(spec.obs_key, str):
        _fail(where, f"expected a column name, found {spec.obs_key!r:.80}")
    cats = spec.categories
    if not 1 <= len(cats) <= MAX_CATEGORIES:
        _fail(where, f"expected 1 to {MAX_CATEGORIES} categories, found {len(cats)}")
    if not all(isinstance(c, str | int | float | np.generic) for c in cats):
        _fail(where, "expected category names (strings or numbers)")
    if len({str(c) for c in cats}) != len(cats):
        _fail(where, "categories repeat")


def _check_data_field(field: Any, where: str) -> None:
    state = _dict(_dict(field, where).get(STATE_REGISTRY_KEY), f"{where}/state_registry")
    stats = _dict(state.get("sc_sed_stats"), f"{where}/state_registry/sc_sed_stats")
    for key, kind in _STATS_TYPES.items():
        value = stats.get(key)
        ok = {int: _is_int, float: _is_number, bool: _is_bool}[kind](value)
        if not ok:
            _fail(f"{where}/sc_sed_stats/{key}", f"expected {kind.__name__}, found {value!r}")
    n_vars, n_obs = int(stats["n_vars"]), int(stats["n_obs"])
    ranges = {
        "n_vars": integer(1, MAX_FEATURES),
        "n_obs": integer(1, MAX_ROWS),
        "max_nonzero": integer(0, n_vars),
        "mean_nonzero": number(0, n_vars),
        "min_value": number(-np.finfo(np.float64).max, np.finfo(np.float64).max),
        "n_nonfinite": integer(0, MAX_ROWS),
    }
    for key, check in ranges.items():
        if problem := check(stats[key]):
            _fail(f"{where}/sc_sed_stats/{key}", f"expected {problem}, found {stats[key]!r}")
    for key, value in ((k, state.get(k)) for k in ("n_obs", "n_vars")):
        if value is not None and value != stats[key]:
            _fail(f"{where}/state_registry/{key}", f"{value!r} but sc_sed_stats has {stats[key]}")
    _check_feature_arrays(stats, f"{where}/sc_sed_stats", n_vars, n_obs)
    _check_value_profile(stats, f"{where}/sc_sed_stats")
    seen = stats.get("seen")
    if not (isinstance(seen, np.ndarray) and seen.dtype == bool and seen.shape == (n_vars,)):
        _fail(f"{where}/sc_sed_stats/seen", f"expected a bool array of length {n_vars}")
    names = state.get("column_names")
    if not (isinstance(names, np.ndarray) and names.shape == (n_vars,)):
        _fail(f"{where}/state_registry/column_names", f"expected {n_vars} feature names")
    if not all(isinstance(n, str | int | np.generic) for n in names.tolist()):
        _fail(f"{where}/state_registry/column_names", "expected strings")


#: Optional per-feature arrays of the statistics: (dtype kinds, lowest value, highest value).
_FEATURE_ARRAYS = {
    "n_detected": ("iu", 0, "n_obs"),
    "value_sum": ("f", None, None),
    "log_value_sum": ("f", None, None),
}


MAX_VOCABULARY, HISTOGRAM_BINS = MatrixStats.MAX_VOCABULARY, MatrixStats.HISTOGRAM_BINS


def _check_value_profile(stats: Mapping, where: str) -> None:
    """Check the optional value statistics (absent or None in older files)."""
    for key in ("max_abs_value", "median_abs_value"):
        value = stats.get(key)
        if value is not None and not (_is_number(value) and 0 <= value < np.inf):
            _fail(f"{where}/{key}", f"expected a finite number >= 0 or null, found {value!r}")
    n_distinct = stats.get("n_distinct_values")
    if n_distinct is not None and not (_is_int(n_distinct) and 0 <= n_distinct <= 1 << 20):
        _fail(f"{where}/n_distinct_values", f"expected a count or null, found {n_distinct!r}")
    vocab, counts = stats.get("value_vocabulary"), stats.get("vocabulary_counts")
    if vocab is not None:
        ok = isinstance(vocab, np.ndarray) and vocab.dtype.kind == "f" and vocab.ndim == 1
        if not ok or not np.isfinite(vocab).all() or not (np.diff(vocab) > 0).all():
            _fail(f"{where}/value_vocabulary", "expected a strictly increasing float array")
        if vocab.size > MAX_VOCABULARY or n_distinct != vocab.size:
            _fail(f"{where}/value_vocabulary", f"expected n_distinct_values <= {MAX_VOCABULARY}")
        ok = isinstance(counts, np.ndarray) and counts.dtype.kind in "iu"
        if not ok or counts.shape != vocab.shape or (counts.size and counts.min() < 0):
            _fail(f"{where}/vocabulary_counts", "expected counts >= 0, one per vocabulary value")
    histogram = stats.get("log_value_histogram")
    if histogram is not None:
        ok = isinstance(histogram, np.ndarray) and histogram.dtype.kind in "iu"
        if not ok or histogram.shape != (HISTOGRAM_BINS,) or histogram.min() < 0:
            _fail(f"{where}/log_value_histogram", f"expected {HISTOGRAM_BINS} counts >= 0")


def _check_feature_arrays(stats: Mapping, where: str, n_vars: int, n_obs: int) -> None:
    for key, (kinds, lo, hi) in _FEATURE_ARRAYS.items():
        value = stats.get(key)
        if value is None:
            continue
        ok = isinstance(value, np.ndarray) and value.dtype.kind in kinds
        if not ok or value.shape != (n_vars,):
            _fail(f"{where}/{key}", f"expected a {kinds} array of length {n_vars} or null")
        if kinds == "f" and not np.isfinite(value).all():
            _fail(f"{where}/{key}", "expected finite values")
        if hi is not None and value.size and (value.min() < lo or value.max() > n_obs):
            _fail(f"{where}/{key}", f"expected values in [{lo}, n_obs={n_obs}]")


def check_init_params(params: Any, model_cls: type, n_features: int = MAX_FEATURES) -> None:
    """``{"non_kwargs": {...}, "kwargs": {"module_kwargs": {...}}}`` naming real parameters.

    Every value is type- and range-checked (:mod:`sc_sed.model._io_limits`) before any
    module is built; ``n_features`` is the registry's number of features.
    """
    params = _dict(params, "init_params")
    if set(params) != {"non_kwargs", "kwargs"}:
        _fail("init_params", f"expected the keys ['kwargs', 'non_kwargs'], found {sorted(params)}")
    non_kwargs = _dict(params["non_kwargs"], "init_params/non_kwargs")
    kwargs = _dict(params["kwargs"], "init_params/kwargs")
    accepted = set(inspect.signature(model_cls.__init__).parameters)
    accepted -= {"self", "adata", "registry", "module_kwargs"}
    unknown = [k for k in non_kwargs if k not in accepted]
    if unknown:
        _fail("init_params/non_kwargs", f"unknown parameters {unknown} of {model_cls.__name__}")
    if set(kwargs) - {"module_kwargs"}:
        _fail("init_params/kwargs", f"unknown groups {sorted(set(kwargs) - {'module_kwargs'})}")
    module_kwargs = _dict(kwargs.get("module_kwargs", {}), "init_params/kwargs/module_kwargs")
    module_params = set(inspect.signature(model_cls._module_cls.__init__).parameters)
    unknown = [k for k in module_kwargs if k not in module_params]
    if unknown:
        _fail("init_params/kwargs/module_kwargs", f"unknown module parameters {unknown}")
    derived = [k for k in module_kwargs if k in DERIVED_MODULE_ARGUMENTS]
    if derived:
        msg = f"{derived} are set by {model_cls.__name__}, not by module_kwargs"
        _fail("init_params/kwargs/module_kwargs", msg)
    values = {**non_kwargs, **module_kwargs}
    for name, problem in parameter_problems(values, n_features):
        group = "non_kwargs" if name in non_kwargs else "kwargs/module_kwargs"
        found = f"{values[name]!r:.80}" if name in values else "the default"
        _fail(f"init_params/{group}/{name}", f"expected {problem}, found {found}")


_ATTRIBUTE_CHECKS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    # name: (required, check, expected)
    "autoencoder_trained_": (True, _is_bool, "a boolean"),
    "diffusion_trained_": (True, _is_bool, "a boolean"),
    "is_trained_": (True, _is_bool, "a boolean"),
    "max_nonzero_": (False, lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "value_likelihood_": (False, lambda v: v in VALUE_LIKELIHOODS, f"one of {VALUE_LIKELIHOODS}"),
    "index_head_": (False, lambda v: v in ("flat", "factorised"), "'flat' or 'factorised'"),
}
_INDEX_ATTRIBUTES = ("train_indices_", "validation_indices_", "test_indices_")
_PLAIN = (str, bool, int, float, type(None), np.generic)


def check_attributes(attrs: Any, model_cls: type, n_obs: int) -> None:
    """Fitted attributes: known ones typed; others plain data under a fresh ``name_``."""
    attrs = _dict(attrs, "attributes")
    for name, (required, check, expected) in _ATTRIBUTE_CHECKS.items():
        if name not in attrs:
            if required:
                _fail(f"attributes/{name}", "missing")
        elif not check(attrs[name]):
            _fail(f"attributes/{name}", f"expected {expected}, found {attrs[name]!r}")
    for name in _INDEX_ATTRIBUTES:
        _index_array(attrs.get(name), f"attributes/{name}", n_obs)
    for name, value in attrs.items():
        if name in _ATTRIBUTE_CHECKS or name in _INDEX_ATTRIBUTES:
            continue
        defined = getattr(model_cls, name, None)
        if not _ATTRIBUTE_NAME.match(name) or name in SPECIAL_ATTRIBUTES or defined is not None:
            _fail(f"attributes/{name}", "not an attribute a model file may set")
        if not isinstance(value, _PLAIN):
            _fail(f"attributes/{name}", f"expected a plain value, found {type(value).__name__}")


def check_history(history: Any) -> None:
    """``{name: {"index_name", "index", "columns", "values"}}`` with numeric tables."""
    history = _dict(history, "history")
    for name, table in history.items():
        where = f"history/{name}"
        table = _dict(table, where)
        if set(table) != {"index_name", "index", "columns", "values"}:
            _fail(where, f"expected index_name, index, columns, values; found {sorted(table)}")
        index, columns, values = table["index"], table["columns"], table["values"]
        if not (isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind in "iuf"):
            _fail(f"{where}/index", "expected a 1-D numeric array")
        if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
            _fail(f"{where}/columns", "expected a list of column names")
        shape = (index.shape[0], len(columns))
        if not (isinstance(values, np.ndarray) and values.dtype.kind == "f"):
            _fail(f"{where}/values", "expected a float array")
        if values.shape != shape:
            _fail(f"{where}/values", f"expected shape {shape}, found {values.shape}")


def encode_history(history: Mapping[str, pd.DataFrame] | None) -> dict:
    """Encode the training history (DataFrames of numbers) as plain tables."""
    out = {}
    for name, frame in (history or {}).items():
        out[str(name)] = {
            "index_name": None if frame.index.name is None else str(frame.index.name),
            "index": np.asarray(frame.index.to_numpy(), dtype=np.float64)
            if frame.index.dtype.kind not in "iu"
            else frame.index.to_numpy(dtype=np.int64),
            "columns": [str(c) for c in frame.columns],
            "values": frame.to_numpy(dtype=np.float64),
        }
    return out


def decode_history(tables: Mapping[str, Mapping]) -> dict[str, pd.DataFrame]:
    """Invert :func:`encode_history` (tables already checked by :func:`check_history`)."""
    out = {}
    for name, table in tables.items():
        index = pd.Index(table["index"], name=table["index_name"])
        out[name] = pd.DataFrame(table["values"], index=index, columns=table["columns"])
    return out
