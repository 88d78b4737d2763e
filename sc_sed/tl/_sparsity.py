"""Per-feature and per-row sparsity statistics, computed without densifying sparse input."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import pearsonr, wasserstein_distance

from ._checks import Matrix, _check_values, _get_matrix, prepare_inputs

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

VAR_KEYS = ("sc_sed_detection_rate", "sc_sed_mean")
OBS_KEYS = ("sc_sed_n_nonzero", "sc_sed_total")


# The counts below skip explicitly stored zeros without copying the matrix. scanpy's
# calculate_qc_metrics gives the same numbers but needs an AnnData and calls
# eliminate_zeros() on the caller's matrix in place, which must not touch user data.
def feature_detection(X: Matrix) -> np.ndarray:
    """Fraction of rows in which each feature is non-zero (explicitly stored zeros do not count)."""
    if sparse.issparse(X):
        counts = np.bincount(X.indices[X.data != 0], minlength=X.shape[1])
    else:
        counts = np.count_nonzero(X, axis=0)
    return counts / X.shape[0]


def row_nnz(X: Matrix) -> np.ndarray:
    """Count the non-zero entries of each row."""
    if sparse.issparse(X):
        row_of_entry = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        return np.bincount(row_of_entry[X.data != 0], minlength=X.shape[0])
    return np.count_nonzero(X, axis=1)


def column_mean(X: Matrix) -> np.ndarray:
    """Mean of each feature over all rows (zeros included), in float64."""
    return np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()


def row_total(X: Matrix) -> np.ndarray:
    """Sum of each row (e.g. the library size), in float64."""
    return np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()


def sparsity_stats(
    adata: AnnData, *, layer: str | None = None, inplace: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Per-feature detection rates and means, per-row non-zero counts and totals.

    Computed directly on sparse matrices (no densification); explicitly stored zeros count as zeros.

    Parameters
    ----------
    adata
        Data to describe (rows are observations, columns features).
    layer
        Layer to use instead of ``adata.X``.
    inplace
        Write the statistics into ``adata`` instead of returning them.

    Returns
    -------
    With ``inplace=False``, ``(var_df, obs_df)``: ``var_df`` (indexed by ``var_names``) has columns
    ``"sc_sed_detection_rate"`` (fraction of rows in which the feature is non-zero) and
    ``"sc_sed_mean"`` (mean value over all rows, zeros included); ``obs_df`` (indexed by
    ``obs_names``) has ``"sc_sed_n_nonzero"`` (non-zero entries in the row) and ``"sc_sed_total"``
    (sum of the row, e.g. the library size). With ``inplace=True``, the same columns are written to
    ``adata.var`` and ``adata.obs`` under the same keys and None is returned.

    Examples
    --------
    >>> var_df, obs_df = sc_sed.tl.sparsity_stats(adata)
    >>> sc_sed.tl.sparsity_stats(adata, inplace=True)
    >>> adata.var["sc_sed_detection_rate"]
    """
    X = _get_matrix(adata, layer, name="adata")
    _check_values(X, name="adata", need_counts=False)
    var_df = pd.DataFrame(
        dict(zip(VAR_KEYS, (feature_detection(X), column_mean(X)), strict=True)),
        index=adata.var_names.copy(),
    )
    obs_df = pd.DataFrame(
        dict(zip(OBS_KEYS, (row_nnz(X), row_total(X)), strict=True)),
        index=adata.obs_names.copy(),
    )
    if not inplace:
        return var_df, obs_df
    for key in VAR_KEYS:
        adata.var[key] = var_df[key].to_numpy()
    for key in OBS_KEYS:
        adata.obs[key] = obs_df[key].to_numpy()
    return None


def _zero_fraction(X: Matrix) -> float:
    n_nonzero = np.count_nonzero(X.data) if sparse.issparse(X) else np.count_nonzero(X)
    return 1.0 - n_nonzero / (X.shape[0] * X.shape[1])


def _safe_pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        logger.warning(
            "detection_rate_pearson is NaN: every feature has the same detection rate in the "
            "%s rows (e.g. all-zero or identical rows), so a correlation is undefined.",
            "real" if np.ptp(a) == 0 else "synthetic",
        )
        return float("nan")
    return float(pearsonr(a, b).statistic)


def _sparsity_metrics(X_real: Matrix, X_synth: Matrix) -> dict[str, float]:
    """Zero fractions, detection-rate agreement and the per-row non-zero count distance."""
    zf_real, zf_synth = _zero_fraction(X_real), _zero_fraction(X_synth)
    det_real, det_synth = feature_detection(X_real), feature_detection(X_synth)
    return {
        "zero_fraction_real": zf_real,
        "zero_fraction_synth": zf_synth,
        "zero_fraction_diff": zf_synth - zf_real,
        "detection_rate_pearson": _safe_pearson(det_real, det_synth),
        "detection_rate_mae": float(np.mean(np.abs(det_real - det_synth))),
        "nnz_per_row_wasserstein": float(wasserstein_distance(row_nnz(X_real), row_nnz(X_synth))),
    }


def _n_spurious_features(X_synth: Matrix, *references: Matrix) -> int:
    """Features non-zero in some synthetic row but zero in every row of all references."""
    seen = np.zeros(X_synth.shape[1], dtype=bool)
    for X in references:
        seen |= feature_detection(X) > 0
    return int(np.count_nonzero((feature_detection(X_synth) > 0) & ~seen))


def shared_matrices(
    real: AnnData, synth: AnnData, *, layer: str | None = None, align: bool = False
) -> tuple[sparse.csr_matrix, sparse.csr_matrix, pd.Index]:
    """Both sets' raw values as CSR matrices on their shared features, checked as ``tl`` checks.

    The same validation and feature matching the comparisons in :mod:`sc_sed.tl` use
    (finite values, equal features, or their intersection in the real set's order with
    ``align=True``); the inputs are not modified.

    Parameters
    ----------
    real, synth
        The two sets (rows are observations).
    layer
        Layer to read instead of ``.X`` (in both).
    align
        Compare on the features both sets share instead of requiring the same features.

    Returns
    -------
    ``(X_real, X_synth, var_names)``: CSR copies (or views of CSR inputs) with the columns
    in the order of ``var_names``.

    Examples
    --------
    >>> X_real, X_synth, genes = sc_sed.tl.shared_matrices(heldout, synth, layer="counts")
    """
    inputs = prepare_inputs(
        {"real": real, "synth": synth}, layer=layer, normalize=False, align=align
    )
    X_real, X_synth = (sparse.csr_matrix(inputs.X[name]) for name in ("real", "synth"))
    return X_real, X_synth, inputs.var_names
