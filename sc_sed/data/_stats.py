"""One-pass summary of a (sparse or dense) data matrix, used to validate and set up models."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from ._checks import canonical_block


@dataclass
class MatrixStats:
    """What SED needs to know about a data matrix.

    Attributes
    ----------
    n_obs, n_vars
        Shape.
    max_nonzero
        Most non-zero entries in one row.
    mean_nonzero
        Average non-zero entries per row (sizes the memory of generated output).
    is_integer
        All values are integers.
    has_negative
        Some value is below zero.
    min_value
        Smallest value (0 for an all-zero matrix).
    n_nonfinite
        Number of NaN/inf values.
    seen
        ``(n_vars,)`` bool: the feature is non-zero in at least one row.
    n_detected
        ``(n_vars,)`` int: rows in which the feature is non-zero.
    value_sum, log_value_sum
        ``(n_vars,)`` float64: sums of each feature's non-zero (finite) values and of
        ``log |value|`` over them (the value head's starting locations); None in
        statistics made before they existed.
    max_abs_value, median_abs_value
        Largest finite non-zero ``|value|``, and the median read from
        ``log_value_histogram`` (accurate to about 6%); None in older statistics.
    n_distinct_values
        Distinct finite non-zero values, counted up to ``MAX_VOCABULARY + 1`` (more
        are not counted); None in older statistics.
    value_vocabulary, vocabulary_counts
        The sorted distinct finite non-zero values (float64) and how often each occurs,
        when there are at most :data:`MAX_VOCABULARY` of them; else None.
    log_value_histogram
        ``(HISTOGRAM_BINS,)`` int: counts of ``log10 |value|`` in bins of a twentieth of
        a decade from ``1e-10`` to ``1e10`` (values outside fall into the end bins).
    MAX_VOCABULARY, HISTOGRAM_BINS
        Class constants: the longest vocabulary kept (256) and the histogram's length.
    """

    MAX_VOCABULARY: ClassVar[int] = 256
    HISTOGRAM_BINS: ClassVar[int] = 400

    n_obs: int
    n_vars: int
    max_nonzero: int
    mean_nonzero: float
    is_integer: bool
    has_negative: bool
    min_value: float
    n_nonfinite: int
    seen: np.ndarray
    n_detected: np.ndarray
    value_sum: np.ndarray | None = None
    log_value_sum: np.ndarray | None = None
    max_abs_value: float | None = None
    median_abs_value: float | None = None
    n_distinct_values: int | None = None
    value_vocabulary: np.ndarray | None = None
    vocabulary_counts: np.ndarray | None = None
    log_value_histogram: np.ndarray | None = None

    def to_dict(self) -> dict:
        """Plain-dict form (for the scvi-tools registry)."""
        return asdict(self)


def _chunks(x, chunk_size: int, axis: int = 0):
    for start in range(0, x.shape[axis], chunk_size):
        yield x[start : start + chunk_size] if axis == 0 else x[:, start : start + chunk_size]


def _backed_format(x) -> str | None:
    """``"csr"``/``"csc"`` for anndata's backed sparse datasets (``read_h5ad(backed="r")``)."""
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(x, CSRDataset):
        return "csr"
    if isinstance(x, CSCDataset):
        return "csc"
    return None


def row_nnz(x, *, chunk_size: int = 2048) -> np.ndarray:
    """Count the stored entries of each row, without densifying.

    CSR input (in memory or backed) is read from ``indptr`` alone (O(rows)); CSC input
    counts its row indices (O(non-zeros), in column chunks when backed); dense input is
    counted in row chunks. Explicitly stored zeros of sparse input are counted (they are
    rare, and this is used to balance minibatches; :func:`matrix_stats` drops them).

    Parameters
    ----------
    x
        ``(n_obs, n_vars)`` SciPy sparse matrix, anndata backed sparse dataset, NumPy array
        or row-sliceable array-like (e.g. a backed dense ``h5py.Dataset``).
    chunk_size
        Rows (or columns) per chunk for dense and backed CSC input.

    Returns
    -------
    ``(n_obs,)`` int64 counts.
    """
    n_obs = x.shape[0]
    backed = _backed_format(x)
    if sp.issparse(x) and x.format == "csr" or backed == "csr":
        indptr = x.indptr if sp.issparse(x) else x.group["indptr"][...]
        return np.diff(np.asarray(indptr)).astype(np.int64)
    if sp.issparse(x) and x.format == "csc":
        return np.bincount(x.indices, minlength=n_obs).astype(np.int64)
    if backed == "csc":
        out = np.zeros(n_obs, dtype=np.int64)
        for chunk in _chunks(x, chunk_size, axis=1):
            out += np.bincount(chunk.indices, minlength=n_obs)
        return out
    if sp.issparse(x):
        return np.diff(sp.csr_matrix(x).indptr).astype(np.int64)
    out = np.empty(n_obs, dtype=np.int64)
    for start in range(0, n_obs, chunk_size):
        block = np.asarray(x[start : start + chunk_size])
        out[start : start + block.shape[0]] = np.count_nonzero(block, axis=1)
    return out


def value_flags(data: np.ndarray) -> tuple[int, bool, float]:
    """Summarise stored values: (non-finite count, finite ones all integers, their minimum or 0).

    Parameters
    ----------
    data
        Stored (non-zero) values of a sparse block.

    Returns
    -------
    The number of NaN/inf values, whether every finite value is an integer, and the
    smallest finite value (0.0 when there is none).
    """
    finite = np.isfinite(data)
    values = data[finite]
    if not values.size:
        return int((~finite).sum()), True, 0.0
    return int((~finite).sum()), bool(np.all(values == np.round(values))), float(values.min())


#: Most distinct non-zero values whose list (the vocabulary) the statistics keep.
MAX_VOCABULARY = MatrixStats.MAX_VOCABULARY
#: The ``log10 |value|`` histogram: bins per decade, lowest decade, number of bins.
HISTOGRAM_PER_DECADE = 20
HISTOGRAM_LOW = -10
HISTOGRAM_BINS = MatrixStats.HISTOGRAM_BINS


class ValueProfile:
    """Accumulate the distribution of the non-zero values over blocks of stored values.

    Keeps the largest ``|value|``, the distinct values with their counts (while there
    are at most :data:`MAX_VOCABULARY`) and the ``log10 |value|`` histogram.
    """

    def __init__(self):
        self.max_abs = 0.0
        self.counts: dict[float, int] | None = {}
        self.histogram = np.zeros(HISTOGRAM_BINS, dtype=np.int64)

    def update(self, data: np.ndarray) -> None:
        """Add a block of stored values (zeros and non-finite values are skipped).

        Parameters
        ----------
        data
            Stored values of a sparse block.
        """
        data = np.asarray(data, dtype=np.float64)
        data = data[np.isfinite(data) & (data != 0)]
        if not data.size:
            return
        magnitude = np.abs(data)
        self.max_abs = max(self.max_abs, float(magnitude.max()))
        bins = np.floor((np.log10(magnitude) - HISTOGRAM_LOW) * HISTOGRAM_PER_DECADE)
        bins = np.clip(bins, 0, HISTOGRAM_BINS - 1).astype(np.int64)
        self.histogram += np.bincount(bins, minlength=HISTOGRAM_BINS)
        if self.counts is None:
            return
        values, counts = np.unique(data, return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            self.counts[v] = self.counts.get(v, 0) + c
        if len(self.counts) > MAX_VOCABULARY:
            self.counts = None

    def fields(self) -> dict:
        """Return the :class:`MatrixStats` fields this profile fills."""
        if self.counts is None:
            n_distinct, vocabulary, counts = MAX_VOCABULARY + 1, None, None
        else:
            keys = sorted(self.counts)
            n_distinct = len(keys)
            vocabulary = np.asarray(keys, dtype=np.float64)
            counts = np.asarray([self.counts[k] for k in keys], dtype=np.int64)
        return {
            "max_abs_value": self.max_abs,
            "median_abs_value": (
                histogram_quantile(self.histogram, 0.5) if self.histogram.any() else None
            ),
            "n_distinct_values": n_distinct,
            "value_vocabulary": vocabulary,
            "vocabulary_counts": counts,
            "log_value_histogram": self.histogram.copy(),
        }


def histogram_quantile(histogram: np.ndarray, q: float) -> float:
    """Return the ``q`` quantile of ``|value|`` read from a ``log_value_histogram``.

    Parameters
    ----------
    histogram
        Counts of :attr:`MatrixStats.log_value_histogram`.
    q
        Quantile in ``[0, 1]``.

    Returns
    -------
    The geometric centre of the bin holding the quantile (accurate to about 6%); NaN
    for an empty histogram.
    """
    histogram = np.asarray(histogram, dtype=np.float64)
    total = histogram.sum()
    if total <= 0:
        return float("nan")
    position = int(np.searchsorted(np.cumsum(histogram), q * total, side="left"))
    position = min(position, len(histogram) - 1)
    return float(10 ** (HISTOGRAM_LOW + (position + 0.5) / HISTOGRAM_PER_DECADE))


def value_sums(csr: sp.csr_matrix | sp.csc_matrix, n_vars: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature sums of the finite stored values and of ``log |value|`` (zeros dropped).

    Parameters
    ----------
    csr
        A CSR (features are column indices) or CSC block without explicit zeros.
    n_vars
        Number of features (columns).

    Returns
    -------
    ``(value_sum, log_value_sum)``, each ``(n_vars,)`` float64.
    """
    coo = csr.tocoo()
    data = coo.data.astype(np.float64)
    finite = np.isfinite(data)
    cols, data = coo.col[finite], data[finite]
    return (
        np.bincount(cols, weights=data, minlength=n_vars),
        np.bincount(cols, weights=np.log(np.abs(data)), minlength=n_vars),
    )


def matrix_stats(x, *, chunk_size: int = 2048) -> MatrixStats:
    """Summarise a matrix without densifying it.

    CSR and dense input (in memory or backed) are read in row chunks, CSC input in column
    chunks, so no chunk is larger than ``chunk_size`` rows (columns) of the sparse matrix.
    Each chunk is read as :func:`~sc_sed.data.check_matrix` reads data: duplicated
    ``(row, col)`` entries summed, stored zeros dropped (on a copy).

    Parameters
    ----------
    x
        ``(n_obs, n_vars)`` SciPy sparse matrix, anndata backed sparse dataset, NumPy array
        or array-like (e.g. a backed dense dataset that supports row slicing).
    chunk_size
        Rows (columns for CSC) per chunk.

    Returns
    -------
    The :class:`MatrixStats`.
    """
    return summarise(x, chunk_size=chunk_size)[0]


def summarise(x, *, chunk_size: int = 2048) -> tuple[MatrixStats, int]:
    """Return :func:`matrix_stats` of ``x`` and the number of duplicated entries summed.

    Parameters
    ----------
    x
        See :func:`matrix_stats`.
    chunk_size
        Rows (columns for CSC) per chunk.

    Returns
    -------
    The statistics and how many stored entries were merged into another one.
    """
    n_obs, n_vars = x.shape
    n_detected = np.zeros(n_vars, dtype=np.int64)
    value_sum, log_value_sum = np.zeros(n_vars), np.zeros(n_vars)
    row_nnz = np.zeros(n_obs, dtype=np.int64)
    is_int, min_value, n_bad, offset, n_summed = True, 0.0, 0, 0, 0
    profile = ValueProfile()
    if sp.issparse(x) and x.format not in ("csr", "csc"):  # COO, DOK, ...: not sliceable
        x = canonical_block(x)[0]
    by_column = (sp.issparse(x) and x.format == "csc") or _backed_format(x) == "csc"
    for chunk in _chunks(x, chunk_size, axis=1 if by_column else 0):
        chunk, summed = canonical_block(chunk, fmt="csc" if by_column else "csr")
        n_summed += summed
        bad, integer, low = value_flags(chunk.data)
        n_bad, is_int, min_value = n_bad + bad, is_int and integer, min(min_value, low)
        profile.update(chunk.data)
        span = slice(offset, offset + chunk.shape[1 if by_column else 0])
        if by_column:  # rows are counted from the row indices, features from indptr
            row_nnz += np.bincount(chunk.indices, minlength=n_obs)
            n_detected[span] = np.diff(chunk.indptr)
            sums = value_sums(chunk, chunk.shape[1])
            value_sum[span], log_value_sum[span] = sums
        else:  # row lengths come from indptr, O(rows)
            row_nnz[span] = np.diff(chunk.indptr)
            n_detected += np.bincount(chunk.indices, minlength=n_vars)
            sums = value_sums(chunk, n_vars)
            value_sum += sums[0]
            log_value_sum += sums[1]
        offset = span.stop
    seen = n_detected > 0
    stats = MatrixStats(
        n_obs=n_obs,
        n_vars=n_vars,
        max_nonzero=int(row_nnz.max()) if n_obs else 0,
        mean_nonzero=float(row_nnz.mean()) if n_obs else 0.0,
        is_integer=is_int,
        has_negative=min_value < 0,
        min_value=min_value,
        n_nonfinite=n_bad,
        seen=seen,
        n_detected=n_detected,
        value_sum=value_sum,
        log_value_sum=log_value_sum,
        **profile.fields(),
    )
    return stats, n_summed
