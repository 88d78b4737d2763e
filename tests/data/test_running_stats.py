"""RunningMatrixStats: matrix_stats accumulated over streamed row blocks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sc_sed.data import RunningMatrixStats, matrix_stats


def _matrix(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.poisson(0.6, size=(23, 9)).astype(np.float32)
    x[:, 4] = 0  # a feature never seen
    x[5] = 0  # an empty row
    return x


@pytest.mark.parametrize("sparse", [False, True])
def test_blocks_give_the_statistics_of_the_whole_matrix(sparse):
    x = _matrix()
    x[2, 3] = np.nan
    x[7, 1] = -2.5
    acc = RunningMatrixStats(n_vars=x.shape[1])
    for start in range(0, x.shape[0], 5):
        block = x[start : start + 5]
        acc.update(sp.csr_matrix(block) if sparse else block)
    got, expected = acc.result().to_dict(), matrix_stats(x).to_dict()
    for key in ("seen", "n_detected", "value_vocabulary", "vocabulary_counts"):
        np.testing.assert_array_equal(got.pop(key), expected.pop(key))
    np.testing.assert_array_equal(
        got.pop("log_value_histogram"), expected.pop("log_value_histogram")
    )
    for key in ("value_sum", "log_value_sum"):
        np.testing.assert_allclose(got.pop(key), expected.pop(key), rtol=1e-12)
    assert got == pytest.approx(expected)
    assert got["n_nonfinite"] == 1 and got["has_negative"] and not got["is_integer"]


def test_a_block_of_another_width_is_an_error():
    acc = RunningMatrixStats(n_vars=9)
    with pytest.raises(ValueError, match="9 features"):
        acc.update(np.ones((2, 8)))
