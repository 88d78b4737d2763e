"""Input validation and feature alignment shared by the evaluation tools and plots."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from sc_sed.data import check_matrix, validated_csr

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

Matrix = np.ndarray | sparse.csr_matrix

_N_SHOW = 5


@dataclass
class _Inputs:
    """Validated matrices on a common, ordered feature set (rows untouched)."""

    X: dict[str, Matrix]
    var_names: pd.Index
    labels: dict[str, np.ndarray] | None = None


def _get_matrix(adata: AnnData, layer: str | None, *, name: str) -> Matrix:
    """Return ``adata.X`` or a layer as a CSR matrix or a dense ndarray.

    Sparse data come back as a canonical copy (:func:`sc_sed.data.validated_csr`:
    duplicated entries summed, stored zeros dropped); dense data are not copied.
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        msg = f"`{name}` must be an AnnData object, got {type(adata).__name__}."
        raise TypeError(msg)
    if layer is None:
        X = adata.X
        if X is None:
            msg = f"`{name}.X` is None; store the values in `.X` or pass `layer=` naming a layer."
            raise ValueError(msg)
    elif layer not in adata.layers:
        msg = (
            f"Layer {layer!r} not found in `{name}.layers` "
            f"(available: {list(adata.layers.keys()) or 'none'}); pass `layer=None` to use `.X`."
        )
        raise KeyError(msg)
    else:
        X = adata.layers[layer]
    if hasattr(X, "to_memory"):  # backed sparse datasets
        X = X.to_memory()
    if sparse.issparse(X):
        _check_dtype(X.dtype, name)
        return validated_csr(X, what=f"`{name}`", dtype=None if X.dtype.kind == "f" else np.float64)
    return np.asarray(X)


def _check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.kind not in "biuf":
        msg = f"`{name}` holds values of dtype {dtype}; expected real numbers."
        raise TypeError(msg)


def _check_values(X: Matrix, *, name: str, need_counts: bool) -> None:
    """Reject empty, non-finite and (when counts are needed) negative matrices.

    The rules are :func:`sc_sed.data.check_matrix`'s (shared with the model and adapters).
    """
    if X.shape[0] == 0 or X.shape[1] == 0:
        msg = f"`{name}` is empty ({X.shape[0]} rows x {X.shape[1]} features); pass a non-empty AnnData."
        raise ValueError(msg)
    _check_dtype(X.dtype, name)
    hint = (
        "normalisation (normalize_total + log1p) needs non-negative counts. Pass "
        "`normalize=False` if the data are already normalised"
    )
    check_matrix(X, what=f"`{name}`", nonnegative=need_counts, hint=hint)


def _preview(names: pd.Index | list[str]) -> str:
    shown = ", ".join(repr(str(n)) for n in list(names)[:_N_SHOW])
    return shown + (", ..." if len(names) > _N_SHOW else "")


def _shared_features(var: dict[str, pd.Index], *, align: bool) -> pd.Index:
    """Return the features to use, ordered as in the first object; raise on mismatch unless ``align``."""
    for name, names in var.items():
        if not names.is_unique:
            dup = names[names.duplicated()].unique()
            msg = f"`{name}.var_names` has duplicates ({_preview(dup)}); call `.var_names_make_unique()` first."
            raise ValueError(msg)
    ref_name, ref = next(iter(var.items()))
    shared = ref
    problems = []
    for name, names in list(var.items())[1:]:
        shared = shared[shared.isin(names)]
        missing, extra = ref.difference(names, sort=False), names.difference(ref, sort=False)
        if len(missing) or len(extra):
            problems.append(
                f"{len(missing)} features of `{ref_name}` are missing from `{name}` ({_preview(missing)}) "
                f"and `{name}` has {len(extra)} features not in `{ref_name}` ({_preview(extra)})"
            )
    if problems and not align:
        msg = (
            "Feature sets differ: "
            + "; ".join(problems)
            + ". Pass `align=True` to use the shared features."
        )
        raise ValueError(msg)
    if len(shared) == 0:
        msg = "The inputs share no features (no common var_names); check that they describe the same features."
        raise ValueError(msg)
    if problems:
        logger.warning(
            "Feature sets differ; aligning on the %d shared features (%s).",
            len(shared),
            "; ".join(problems),
        )
    return shared


def _check_groupby(adatas: dict[str, AnnData], groupby: str) -> dict[str, np.ndarray]:
    """Return each object's ``obs[groupby]`` as an object array (missing labels as None)."""
    missing = [name for name, ad in adatas.items() if groupby not in ad.obs.columns]
    if missing:
        present = [name for name in adatas if name not in missing]
        where = f" (present in {', '.join(f'`{p}.obs`' for p in present)})" if present else ""
        msg = (
            f"groupby={groupby!r} is not a column of {', '.join(f'`{m}.obs`' for m in missing)}{where}. "
            f"Columns of `{missing[0]}.obs`: {_preview(list(adatas[missing[0]].obs.columns)) or 'none'}."
        )
        raise KeyError(msg)
    out = {}
    for name, ad in adatas.items():
        col = ad.obs[groupby]
        out[name] = np.asarray(col.astype(object).where(col.notna(), None))
    return out


def prepare_inputs(
    adatas: dict[str, AnnData],
    *,
    layer: str | None,
    normalize: bool,
    align: bool,
    groupby: str | None = None,
) -> _Inputs:
    """Validate a set of AnnData objects and return their matrices on common features.

    Columns are re-indexed (a copy) only when the feature order differs from the first object.
    """
    X = {name: _get_matrix(ad, layer, name=name) for name, ad in adatas.items()}
    for name, mat in X.items():
        _check_values(mat, name=name, need_counts=normalize)
    shared = _shared_features({n: pd.Index(ad.var_names) for n, ad in adatas.items()}, align=align)
    for name, ad in adatas.items():
        names = pd.Index(ad.var_names)
        if not names.equals(shared):
            X[name] = X[name][:, names.get_indexer(shared)]
    labels = _check_groupby(adatas, groupby) if groupby is not None else None
    return _Inputs(X=X, var_names=shared, labels=labels)
