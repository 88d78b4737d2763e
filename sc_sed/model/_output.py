"""Assemble generated rows into an AnnData that looks like the training data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._conditions import ConditionSpec


def _names(values) -> pd.Index:
    """Labels as an index; string labels get object dtype.

    pandas 3 infers its new string dtype for strings, which anndata 0.12 refuses to write
    to .h5ad by default; object dtype writes everywhere. Other labels (e.g. integer
    cluster ids) keep their type.
    """
    values = list(values)
    if all(isinstance(v, str) for v in values):
        return pd.Index(values, dtype=object)
    return pd.Index(values)


def writable_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy ``frame`` giving its string index, columns and categories object dtype.

    A training ``var`` read or built under pandas 3 holds its string dtype; copied as it
    is into generated data it would make ``write_h5ad`` fail (see :func:`_names`).
    """
    out = frame.copy()
    out.index = _names(out.index)
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.CategoricalDtype) and isinstance(
            dtype.categories.dtype, pd.StringDtype
        ):
            out[col] = out[col].cat.set_categories(_names(dtype.categories))
        elif isinstance(dtype, pd.StringDtype):
            out[col] = out[col].astype(object)
    return out


def condition_obs(
    specs: Sequence[ConditionSpec], codes: np.ndarray, index: pd.Index
) -> pd.DataFrame:
    """Categorical obs columns (training categories) for condition codes."""
    obs = pd.DataFrame(index=_names(index))
    for k, spec in enumerate(specs):
        obs[spec.obs_key] = pd.Categorical.from_codes(
            codes[:, k], categories=_names(spec.categories)
        )
    return obs


def synthetic_anndata(
    x: sp.csr_matrix | None,
    var: pd.DataFrame,
    obs: pd.DataFrame,
    *,
    layer: str | None,
    uns: dict[str, Any],
) -> AnnData:
    """Wrap generated rows: CSR ``X`` (and ``layers[layer]``), ``obs["synthetic"]``, provenance.

    Parameters
    ----------
    x
        ``(n, n_features)`` generated values; None leaves ``X`` and the layer empty (the
        skeleton of a result streamed to disk).
    var
        Training feature annotations (index: feature names); copied with object-dtype
        strings (:func:`writable_frame`), so the result always writes to .h5ad.
    obs
        Per-row annotations (conditions); ``synthetic = True`` is added.
    layer
        Registered layer name, or None when ``X`` was used.
    uns
        Provenance stored under ``uns["sc_sed"]``.

    Returns
    -------
    The AnnData.
    """
    obs = obs.copy()
    obs["synthetic"] = True
    adata = AnnData(
        X=None if x is None else sp.csr_matrix(x, dtype=np.float32),
        obs=obs,
        var=writable_frame(var),
    )
    if layer is not None and x is not None:
        adata.layers[layer] = adata.X.copy()
    adata.uns["sc_sed"] = uns
    return adata
