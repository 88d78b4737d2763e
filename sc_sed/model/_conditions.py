"""Conditioning covariates: which are registered, their codes, and generation requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scvi import REGISTRY_KEYS

from ._registry import setup_arg, state_registry


@dataclass(frozen=True)
class ConditionSpec:
    """One categorical covariate the diffusion is conditioned on.

    Attributes
    ----------
    obs_key
        Column of ``adata.obs``.
    registry_key
        scvi-tools registry key holding its codes.
    column
        Column of the registry array (joint categorical covariates have several).
    categories
        Training categories; code ``k`` means ``categories[k]``.
    """

    obs_key: str
    registry_key: str
    column: int
    categories: tuple

    @property
    def n_cats(self) -> int:
        """Number of categories."""
        return len(self.categories)


def check_obs_keys(adata: Any, keys: Mapping[str, str | Sequence[str] | None]) -> None:
    """Raise when a covariate column is missing from ``adata.obs`` or has missing values.

    Parameters
    ----------
    adata
        AnnData or MuData (its global ``obs``).
    keys
        ``{argument name: column or list of columns}`` as given to the set-up method.
    """
    for arg, value in keys.items():
        for key in [value] if isinstance(value, str) else (value or []):
            if key not in adata.obs:
                msg = (
                    f"{arg}={key!r} is not a column of .obs "
                    f"(columns: {list(adata.obs.columns)[:20]})."
                )
                raise KeyError(msg)
            n_missing = int(adata.obs[key].isna().sum())
            if n_missing:
                msg = (
                    f"{arg}={key!r}: obs[{key!r}] has {n_missing} missing value(s); "
                    "fill them (e.g. with an 'unknown' category) or drop those rows first."
                )
                raise ValueError(msg)


def condition_specs(registry: Mapping[str, Any]) -> list[ConditionSpec]:
    """List the covariates given to ``setup_anndata`` (labels, batch, categorical covariates)."""
    specs = []
    for arg, key in (
        ("labels_key", REGISTRY_KEYS.LABELS_KEY),
        ("batch_key", REGISTRY_KEYS.BATCH_KEY),
    ):
        if setup_arg(registry, arg) is not None:
            mapping = state_registry(registry, key)["categorical_mapping"]
            specs.append(ConditionSpec(setup_arg(registry, arg), key, 0, tuple(mapping)))
    if setup_arg(registry, "categorical_covariate_keys"):
        state = state_registry(registry, REGISTRY_KEYS.CAT_COVS_KEY)
        for col, obs_key in enumerate(state["field_keys"]):
            specs.append(
                ConditionSpec(
                    obs_key, REGISTRY_KEYS.CAT_COVS_KEY, col, tuple(state["mappings"][obs_key])
                )
            )
    return specs


def condition_codes(
    adata_manager, specs: Sequence[ConditionSpec], indices: np.ndarray
) -> np.ndarray:
    """``(len(indices), n_conds)`` integer codes of the registered covariates."""
    cols = []
    for spec in specs:
        arr = adata_manager.get_from_registry(spec.registry_key)
        arr = arr.to_numpy() if hasattr(arr, "to_numpy") else np.asarray(arr)
        cols.append(arr[indices, spec.column].astype(np.int64))
    return np.stack(cols, axis=1) if cols else np.zeros((len(indices), 0), dtype=np.int64)


def _codes_for(spec: ConditionSpec, values: Sequence) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(spec.categories)}
    lookup.update({str(c): i for i, c in enumerate(spec.categories)})
    unknown = sorted({str(v) for v in values if v not in lookup})
    if unknown:
        msg = (
            f"Unknown {spec.obs_key!r} value(s) {unknown[:5]}; the model was trained on "
            f"{list(spec.categories)[:20]}."
        )
        raise ValueError(msg)
    return np.array([lookup[v] for v in values], dtype=np.int64)


def expand_request(
    request: Any, n_cells: int | None, spec: ConditionSpec
) -> tuple[np.ndarray, int]:
    """Turn one category, a per-cell list, or a ``{category: n}`` dict into codes."""
    if isinstance(request, Mapping):
        bad = {
            k: n
            for k, n in request.items()
            if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0
        }
        if bad:
            msg = (
                f"Counts of {spec.obs_key!r} must be non-negative integers, got {bad}; "
                "pass e.g. {'B cell': 100}."
            )
            raise ValueError(msg)
        counts = np.array([int(n) for n in request.values()], dtype=np.int64)
        total = int(counts.sum())
        if n_cells is not None and n_cells != total:
            msg = f"n_cells={n_cells} but the {spec.obs_key!r} counts sum to {total}; pass n_cells=None."
            raise ValueError(msg)
        return np.repeat(_codes_for(spec, list(request)), counts), total
    elif isinstance(request, str) or np.isscalar(request):
        if n_cells is None:
            msg = "Pass n_cells when requesting a single category."
            raise ValueError(msg)
        return np.full(n_cells, _codes_for(spec, [request])[0], dtype=np.int64), n_cells
    else:
        values = list(request)
        if n_cells is not None and n_cells != len(values):
            msg = f"n_cells={n_cells} but {len(values)} {spec.obs_key!r} values were given (one per cell)."
            raise ValueError(msg)
    return _codes_for(spec, values), len(values)


def draw_conditions(
    specs: Sequence[ConditionSpec],
    requests: Mapping[str, Any],
    n_cells: int | None,
    train_codes: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Condition codes for generated cells.

    Requested covariates are fixed; the others are copied from training cells drawn at
    random among those matching the requested ones, so unrequested covariates follow
    their training distribution given the requested ones (all of them when nothing is
    requested: training proportions).
    """
    by_key = {s.obs_key: i for i, s in enumerate(specs)}
    unknown = [k for k in requests if k not in by_key]
    if unknown:
        msg = f"Cannot condition on {unknown}: registered covariates are {list(by_key)}. Register them in setup_anndata."
        raise ValueError(msg)
    fixed = {}
    for key, req in requests.items():
        fixed[by_key[key]], n_cells = expand_request(req, n_cells, specs[by_key[key]])
    if n_cells is None or n_cells < 1:
        msg = f"n_cells must be a positive integer, got {n_cells}."
        raise ValueError(msg)
    codes = np.zeros((n_cells, len(specs)), dtype=np.int64)
    if not specs:
        return codes
    cols = sorted(fixed)
    wanted = (
        np.stack([fixed[c] for c in cols], axis=1) if cols else np.zeros((n_cells, 0), np.int64)
    )
    for combo in np.unique(wanted, axis=0):
        rows = np.flatnonzero((wanted == combo).all(axis=1))
        pool = np.flatnonzero((train_codes[:, cols] == combo).all(axis=1))
        if pool.size == 0:  # unseen combination: draw the rest independently of it
            pool = np.arange(train_codes.shape[0])
        codes[rows] = train_codes[rng.choice(pool, size=rows.size)]
        codes[rows[:, None], cols] = combo
    return codes
