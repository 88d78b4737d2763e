"""Value transforms of the dense baseline: log-normalisation, its inverse, thresholding."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch


def log_normalise(x: sp.csr_matrix, library: np.ndarray, *, target_sum: float) -> sp.csr_matrix:
    """``log1p(x / library * target_sum)`` row by row (scanpy's normalize_total + log1p).

    Parameters
    ----------
    x
        ``(n, D)`` non-negative CSR matrix (not modified).
    library
        ``(n,)`` row totals; rows with total 0 stay all-zero.
    target_sum
        Total of every row after normalisation.

    Returns
    -------
    A new float32 CSR matrix with the same sparsity pattern.
    """
    scale = np.divide(target_sum, library, out=np.zeros_like(library), where=library > 0)
    out = sp.csr_matrix(sp.diags(scale) @ x, dtype=np.float32)
    np.log1p(out.data, out=out.data)
    return out


def feature_mean_std(x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and (population) standard deviation of a sparse matrix, without densifying."""
    n = x.shape[0]
    mean = np.asarray(x.sum(axis=0), dtype=np.float64).ravel() / n
    sq = np.asarray(x.multiply(x).sum(axis=0), dtype=np.float64).ravel() / n
    return mean, np.sqrt(np.clip(sq - mean**2, 0.0, None))


def to_counts(y: torch.Tensor, library: torch.Tensor, *, target_sum: float) -> torch.Tensor:
    """Invert :func:`log_normalise` for generated rows; negatives become exact zeros.

    ``max(expm1(y) * library / target_sum, 0)``, with ``y`` first capped at
    ``log1p(target_sum)`` (a whole normalised row in one feature) so nothing overflows.

    Parameters
    ----------
    y
        ``(n, D)`` generated log-normalised values.
    library
        ``(n,)`` library size of each row.
    target_sum
        The normalisation total used in training.

    Returns
    -------
    ``(n, D)`` non-negative values in count space; every positive value is kept.
    """
    y = y.clamp_max(math.log1p(target_sum))
    return (torch.expm1(y) * (library[:, None] / target_sum)).clamp_min(0.0)


def apply_threshold(x: torch.Tensor, threshold: float, *, integer: bool) -> torch.Tensor:
    """Zero every value below ``threshold``; for count data round kept values to integers ≥ 1.

    Parameters
    ----------
    x
        ``(n, D)`` non-negative values in count space.
    threshold
        Values strictly below it become exact zeros.
    integer
        Round the kept values to the nearest integer, and at least 1.

    Returns
    -------
    A new tensor.
    """
    keep = (x >= threshold) & (x > 0)
    if integer:
        x = torch.round(x).clamp_min(1.0)
    return torch.where(keep, x, torch.zeros_like(x))


class ValueQuantile:
    """Streaming quantile of non-negative values with bounded memory.

    Exact zeros are counted exactly; positive values go to a histogram of ``log10`` with
    bins of ``1 / bins_per_decade`` decades over ``[1e-8, 1e8]`` (values outside fall in
    the end bins), so a quantile is resolved to a relative error of at most
    ``10**(1/bins_per_decade) - 1`` (0.23% by default).

    Parameters
    ----------
    bins_per_decade
        Histogram resolution.
    """

    LOW, HIGH = -8.0, 8.0

    def __init__(self, bins_per_decade: int = 1000):
        self.bins_per_decade = int(bins_per_decade)
        self.n_bins = int((self.HIGH - self.LOW) * self.bins_per_decade)
        self.counts = np.zeros(self.n_bins, dtype=np.int64)
        self.n_zero = 0
        self.n = 0

    def update(self, x: torch.Tensor) -> None:
        """Add the values of ``x`` (any shape)."""
        x = x.detach().flatten()
        positive = x[x > 0].double()
        self.n += x.numel()
        self.n_zero += x.numel() - positive.numel()
        pos = ((torch.log10(positive) - self.LOW) * self.bins_per_decade).floor().long()
        pos = pos.clamp(0, self.n_bins - 1).cpu()
        self.counts += torch.bincount(pos, minlength=self.n_bins).numpy()

    def threshold_for_zero_fraction(self, zero_fraction: float) -> float:
        """Smallest histogram edge ``τ`` with fraction of values ``< τ`` at least ``zero_fraction``.

        Returns 0 when the exact zeros alone reach ``zero_fraction``.
        """
        target = math.ceil(zero_fraction * self.n)
        if self.n_zero >= target:
            return 0.0
        below = self.n_zero + np.cumsum(self.counts)
        b = int(np.searchsorted(below, target))
        return float(10.0 ** (self.LOW + (min(b, self.n_bins - 1) + 1) / self.bins_per_decade))
