"""The one validation layer for input data matrices (model, tools, adapters).

Rules, the same for every entry point:

* the matrix is 2-D and real-valued (bool, integer or float);
* duplicated ``(row, col)`` entries of sparse input (CSR, CSC, COO, backed) are **summed**,
  as :meth:`scipy.sparse.csr_matrix.sum_duplicates` does, on a copy: a position counts once;
* explicitly stored zeros (and duplicates that sum to zero) are dropped;
* NaN and infinite values are refused;
* negative values are refused where the caller needs non-negative data (``nonnegative=True``).

The user's matrix is never modified.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._checks import canonical_block, cast_exact
from ._stats import MatrixStats, summarise

logger = logging.getLogger(__name__)


def _check_layout(x: Any, what: str) -> None:
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2:
        msg = f"{what} must be a 2-D matrix (rows × features), got shape {shape}."
        raise ValueError(msg)
    dtype = getattr(x, "dtype", None)
    if dtype is None or np.dtype(dtype).kind not in "biuf":
        msg = (
            f"{what} has non-numeric dtype {dtype}; convert it to real numbers first, "
            "e.g. `.astype(np.float32)`."
        )
        raise TypeError(msg)


def _check_values(n_nonfinite: int, min_value: float, *, what: str, nonnegative: bool, hint: str) -> None:
    if n_nonfinite:
        msg = (
            f"{what} contains {n_nonfinite} non-finite values (NaN or infinite); replace "
            "them (e.g. with np.nan_to_num) or drop the affected rows first."
        )
        raise ValueError(msg)
    if nonnegative and min_value < 0:
        msg = f"{what} contains negative values (minimum {min_value:.6g}), but {hint or 'non-negative values are needed'}."
        raise ValueError(msg)


def _log_summed(n_summed: int, what: str) -> None:
    if n_summed:
        logger.warning(
            "%s stores %d duplicated (row, col) entries; they were summed (the data were "
            "not modified). Call `.sum_duplicates()` on the matrix to silence this.",
            what,
            n_summed,
        )


def check_matrix(
    x: Any,
    *,
    what: str = "The data",
    nonnegative: bool = False,
    hint: str = "",
    chunk_size: int = 2048,
) -> MatrixStats:
    """Validate a data matrix and summarise it, in chunks, without copying it whole.

    Every sc_sed entry point that reads a data matrix (``SEDModel.setup_anndata``,
    ``train``, ``reconstruct``, ``get_latent_representation``, the :mod:`sc_sed.tl`
    tools and :mod:`sc_sed.pl` plots, the adapters) applies these rules: the matrix is
    2-D and real-valued; duplicated ``(row, col)`` entries are **summed** (a warning is
    logged; the matrix itself is not modified); explicitly stored zeros are dropped;
    NaN and infinite values raise; negative values raise when ``nonnegative``.

    Parameters
    ----------
    x
        ``(n_obs, n_vars)`` NumPy array, SciPy sparse matrix (any format) or anndata
        backed dataset.
    what
        What the matrix is, for the messages (e.g. ``"adata.layers['counts']"``).
    nonnegative
        Refuse negative values (e.g. counts, or a likelihood for positive values).
    hint
        Why non-negative values are needed and how to fix it, for the message.
    chunk_size
        Rows (columns for CSC) read at a time.

    Returns
    -------
    The :class:`~sc_sed.data.MatrixStats` of the data as read by the rules (duplicates
    summed, zeros dropped).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> x = sp.csr_matrix(([1.0, 2.0], [0, 0], [0, 2]), shape=(1, 3))  # (0, 0) twice
    >>> check_matrix(x).n_detected.tolist()
    [1, 0, 0]
    """
    _check_layout(x, what)
    stats, n_summed = summarise(x, chunk_size=chunk_size)
    _check_values(stats.n_nonfinite, stats.min_value, what=what, nonnegative=nonnegative, hint=hint)
    _log_summed(n_summed, what)
    return stats


def validated_csr(
    x: Any,
    *,
    what: str = "The data",
    nonnegative: bool = False,
    hint: str = "",
    dtype: Any = None,
) -> sp.csr_matrix:
    """Return a validated, canonical CSR copy of ``x`` (the rules of :func:`check_matrix`).

    Parameters
    ----------
    x
        ``(n_obs, n_vars)`` NumPy array, SciPy sparse matrix (any format) or anndata
        backed dataset (read into memory).
    what
        What the matrix is, for the messages.
    nonnegative
        Refuse negative values.
    hint
        Why non-negative values are needed and how to fix it, for the message.
    dtype
        Value dtype of the result; None keeps the input's (summed duplicates must fit it).
        Values it cannot hold raise a ValueError (nothing is wrapped or truncated).

    Returns
    -------
    A new :class:`scipy.sparse.csr_matrix` with sorted indices, duplicated entries
    summed and no stored zeros.
    """
    _check_layout(x, what)
    if hasattr(x, "to_memory"):  # anndata backed sparse dataset
        x = x.to_memory()
    input_dtype = np.dtype(x.dtype)
    out, n_summed = canonical_block(x)
    finite = np.isfinite(out.data)
    n_bad = int(out.data.size - np.count_nonzero(finite))
    low = float(out.data.min()) if out.data.size and not n_bad else 0.0
    _check_values(n_bad, low, what=what, nonnegative=nonnegative, hint=hint)
    _log_summed(n_summed, what)
    out.data = cast_exact(out.data, input_dtype if dtype is None else dtype, what=f"{what}'s values")
    return out
