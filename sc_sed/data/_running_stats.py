"""The statistics of :func:`~sc_sed.data.matrix_stats`, accumulated over streamed row blocks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._checks import canonical_block
from ._stats import MatrixStats, ValueProfile, value_flags, value_sums


class RunningMatrixStats:
    """Accumulate :class:`~sc_sed.data.MatrixStats` over row blocks seen one at a time.

    For data that are never held as one matrix (minibatches streamed from a
    :class:`~lightning.pytorch.LightningDataModule`, e.g. a TileDB-SOMA query): each block
    is summarised and dropped, so memory is ``O(n_vars)`` plus one block. The result
    equals :func:`~sc_sed.data.matrix_stats` of the blocks stacked in the order seen.

    Parameters
    ----------
    n_vars
        Number of features (columns of every block).

    Examples
    --------
    >>> acc = RunningMatrixStats(n_vars=3)
    >>> acc.update(np.array([[0, 2, 0], [1, 0, 0]]))
    >>> acc.result().max_nonzero
    1
    """

    def __init__(self, n_vars: int):
        self.n_vars = int(n_vars)
        self._n_detected = np.zeros(self.n_vars, dtype=np.int64)
        self._value_sum = np.zeros(self.n_vars)
        self._log_value_sum = np.zeros(self.n_vars)
        self._n_obs = 0
        self._n_entries = 0
        self._max_nonzero = 0
        self._is_integer = True
        self._min_value = 0.0
        self._n_nonfinite = 0
        self._profile = ValueProfile()

    def update(self, block: np.ndarray | sp.spmatrix | sp.sparray) -> None:
        """Add a ``(rows, n_vars)`` block (dense NumPy array or SciPy sparse matrix).

        Parameters
        ----------
        block
            The next rows.
        """
        if block.ndim != 2 or block.shape[1] != self.n_vars:
            msg = (
                f"A block of shape {tuple(block.shape)} does not have the {self.n_vars} "
                "features of the earlier rows; every block needs (rows, n_vars)."
            )
            raise ValueError(msg)
        csr, _ = canonical_block(block)  # a copy: duplicates summed, zeros dropped
        bad, integer, low = value_flags(csr.data)
        self._n_nonfinite += bad
        self._is_integer &= integer
        self._min_value = min(self._min_value, low)
        self._profile.update(csr.data)
        lengths = np.diff(csr.indptr)
        if lengths.size:
            self._max_nonzero = max(self._max_nonzero, int(lengths.max()))
        self._n_obs += csr.shape[0]
        self._n_entries += int(lengths.sum())
        self._n_detected += np.bincount(csr.indices, minlength=self.n_vars)
        sums = value_sums(csr, self.n_vars)
        self._value_sum += sums[0]
        self._log_value_sum += sums[1]

    @property
    def n_obs(self) -> int:
        """Rows seen so far."""
        return self._n_obs

    def result(self) -> MatrixStats:
        """Return the statistics of all rows seen so far.

        Returns
        -------
        The :class:`~sc_sed.data.MatrixStats`.
        """
        n_detected = self._n_detected.copy()
        return MatrixStats(
            n_obs=self._n_obs,
            n_vars=self.n_vars,
            max_nonzero=self._max_nonzero,
            mean_nonzero=self._n_entries / self._n_obs if self._n_obs else 0.0,
            is_integer=self._is_integer,
            has_negative=self._min_value < 0,
            min_value=self._min_value,
            n_nonfinite=self._n_nonfinite,
            seen=n_detected > 0,
            n_detected=n_detected,
            value_sum=self._value_sum.copy(),
            log_value_sum=self._log_value_sum.copy(),
            **self._profile.fields(),
        )
