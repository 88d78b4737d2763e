"""The array-level distances on Gaussian samples."""

from __future__ import annotations

import numpy as np
import pytest

from sc_sed.tl import _metrics as M


@pytest.fixture
def gauss():
    rng = np.random.default_rng(0)
    return rng.normal(size=(400, 5)), rng.normal(size=(400, 5)), rng.normal(size=(400, 5)) + 1.0


def test_mmd_small_for_same_distribution_and_grows_with_shift(gauss):
    a, b, shifted = gauss
    med = M.median_distance(a, np.random.default_rng(0))
    same, far = M.mmd_rbf(a, b, median=med), M.mmd_rbf(a, shifted, median=med)
    assert abs(same) < 0.01
    assert far > 10 * abs(same) and far > 0.05


def test_mmd_blocks_match_direct_computation(gauss, monkeypatch):
    a, b, _ = gauss
    direct = M.mmd_rbf(a, b, median=2.0)
    monkeypatch.setattr(M, "_BLOCK", 7)
    assert M.mmd_rbf(a, b, median=2.0) == pytest.approx(direct, rel=1e-10, abs=1e-12)


def test_energy_distance_matches_definition(gauss):
    a, _, shifted = gauss
    from scipy.spatial.distance import cdist

    n = len(a)
    expected = (
        2 * cdist(a, shifted).mean()
        - cdist(a, a).sum() / (n * (n - 1))
        - cdist(shifted, shifted).sum() / (n * (n - 1))
    )
    assert M.energy_distance(a, shifted) == pytest.approx(expected, rel=1e-8)


def test_wasserstein_zero_for_identical_sets_and_positive_otherwise(gauss):
    a, _, shifted = gauss
    rng = np.random.default_rng(0)
    assert M.wasserstein_assignment(a, a[::-1], rng) == pytest.approx(0.0, abs=1e-12)
    assert M.wasserstein_assignment(a, shifted, rng) > 1.0


@pytest.mark.parametrize("classifier", ["gradient_boosting", "logistic"])
def test_auroc_half_for_exact_copies_and_high_for_shift(gauss, classifier):
    a, _, shifted = gauss
    kw = {"classifier": classifier, "n_folds": 5}
    copies = M.discriminability_auroc(a, a.copy(), rng=np.random.default_rng(0), **kw)
    assert copies == pytest.approx(0.5)
    assert M.discriminability_auroc(a, shifted, rng=np.random.default_rng(0), **kw) > 0.85


def test_auroc_nan_with_too_few_rows(gauss):
    a, b, _ = gauss
    assert np.isnan(
        M.discriminability_auroc(
            a[:3], b[:3], classifier="logistic", n_folds=5, rng=np.random.default_rng(0)
        )
    )


def test_unknown_classifier():
    with pytest.raises(ValueError, match="classifier='svm' is not supported"):
        M.make_classifier("svm", 0)
