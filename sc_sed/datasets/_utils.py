"""Small helpers shared by the synthetic generators: argument checks and feature padding."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData


def check_positive_ints(**values: int) -> None:
    """Raise a ``ValueError`` naming the first argument that is not an integer >= 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            msg = f"`{name}` must be an integer >= 1, got {value!r}."
            raise ValueError(msg)


def resolve_n_features(n_features: int | None, n_real: int, *, what: str) -> int:
    """Return the total number of features; ``n_features`` must be ``None`` or ``>= n_real``."""
    if n_features is None:
        return n_real
    check_positive_ints(n_features=n_features)
    if n_features < n_real:
        msg = f"`n_features` ({n_features}) must be >= the number of {what} ({n_real}); it only adds all-zero features."
        raise ValueError(msg)
    return int(n_features)


def pad_features(adata: AnnData, n_features: int, *, fill: dict | None = None) -> AnnData:
    """Append all-zero features ``"pad_{i}"`` up to ``n_features``; ``var["padding"]`` flags them.

    Parameters
    ----------
    adata
        AnnData with a CSR ``X`` (and optionally CSR layers) to pad; not modified.
    n_features
        Total number of features after padding.
    fill
        Values for the padded rows of existing ``var`` columns (default NaN / pandas' missing).

    Returns
    -------
    A new AnnData; the first ``adata.n_vars`` features are unchanged.
    """
    n_pad = n_features - adata.n_vars
    var = adata.var.copy()
    var["padding"] = False
    if n_pad == 0:
        out = adata.copy()
        out.var = var
        return out
    width = len(str(n_pad - 1))
    pad = pd.DataFrame(index=pd.Index([f"pad_{i:0{width}d}" for i in range(n_pad)]))
    for col, value in (fill or {}).items():
        pad[col] = value
    pad["padding"] = True
    joined = pd.concat([var, pad], axis=0)
    for col in var.columns:  # keep categorical / integer dtypes where the fill allows it
        if col in (fill or {}) or isinstance(var[col].dtype, pd.CategoricalDtype):
            joined[col] = joined[col].astype(var[col].dtype)
    shape = (adata.n_obs, n_features)

    def widen(m: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix((m.data.copy(), m.indices.copy(), m.indptr.copy()), shape=shape)

    out = AnnData(
        X=widen(adata.X), obs=adata.obs.copy(), var=joined, uns=copy.deepcopy(dict(adata.uns))
    )
    for key, layer in adata.layers.items():
        out.layers[key] = widen(layer)
    return out
