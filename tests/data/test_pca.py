"""sparse_pca (implicitly centred randomised SVD) and the per-feature value sums."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sc_sed.data import matrix_stats, sparse_pca


def _low_rank_counts(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    factors = rng.gamma(1.0, 1.0, size=(200, 3)) @ rng.gamma(0.5, 1.0, size=(3, 60))
    return sp.csr_matrix(rng.poisson(factors).astype(np.float64))


def test_components_match_dense_pca():
    x = _low_rank_counts()
    loadings, mean, sd = sparse_pca(x, 5, seed=0)
    dense = x.toarray()
    np.testing.assert_allclose(mean, dense.mean(0))
    _, s, vt = np.linalg.svd(dense - dense.mean(0), full_matrices=False)
    # same components up to sign: exact for the 3 signal directions, close for the noise ones
    cosines = np.abs(np.sum(loadings * vt[:5].T, axis=0))
    np.testing.assert_allclose(cosines[:3], 1.0, atol=1e-6)
    assert (cosines[3:] > 0.99).all()
    np.testing.assert_allclose(sd, s[:5] / np.sqrt(x.shape[0] - 1), rtol=1e-3)
    scores = (dense - mean) @ loadings
    np.testing.assert_allclose(scores.std(0, ddof=1), sd, rtol=1e-3)


def test_deterministic_for_a_seed_and_sign_fixed():
    x = _low_rank_counts(1)
    a, b = sparse_pca(x, 4, seed=3), sparse_pca(x, 4, seed=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    loadings = a[0]
    biggest = loadings[np.abs(loadings).argmax(0), np.arange(4)]
    assert (biggest > 0).all()


@pytest.mark.parametrize("k", [0, 60, 200])
def test_too_many_or_no_components_is_an_error(k):
    with pytest.raises(ValueError, match="n_components must be between 1 and"):
        sparse_pca(_low_rank_counts()[:, :60], k)


def test_matrix_stats_value_sums_skip_zeros_and_non_finite():
    x = np.array([[1.0, 0.0, 4.0], [2.0, 0.0, np.nan], [0.0, 0.0, -3.0]])
    stats = matrix_stats(sp.csr_matrix(x))
    np.testing.assert_allclose(stats.value_sum, [3.0, 0.0, 1.0])
    np.testing.assert_allclose(stats.log_value_sum, [np.log(2.0), 0.0, np.log(12.0)])
    by_column = matrix_stats(sp.csc_matrix(x), chunk_size=2)
    np.testing.assert_allclose(by_column.value_sum, stats.value_sum)
    np.testing.assert_allclose(by_column.log_value_sum, stats.log_value_sum)
