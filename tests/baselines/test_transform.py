from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from sc_sed.baselines._common import draw_library
from sc_sed.baselines._transform import (
    ValueQuantile,
    apply_threshold,
    feature_mean_std,
    log_normalise,
    to_counts,
)


def test_log_normalise_round_trip(rng):
    x = sp.random(20, 30, density=0.3, format="csr", random_state=0, dtype=np.float32) * 50
    x.data = np.ceil(x.data)
    lib = np.asarray(x.sum(axis=1)).ravel()
    y = log_normalise(x, lib, target_sum=1e4)
    assert (y != 0).nnz == x.nnz  # same sparsity pattern, input untouched
    back = to_counts(
        torch.as_tensor(y.toarray()), torch.as_tensor(lib, dtype=torch.float32), target_sum=1e4
    )
    np.testing.assert_allclose(back.numpy(), x.toarray(), rtol=1e-4, atol=1e-3)
    mean, std = feature_mean_std(y)
    np.testing.assert_allclose(mean, y.toarray().mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, y.toarray().std(0), rtol=1e-4, atol=1e-6)


def test_to_counts_clips_and_caps():
    y = torch.tensor([[-3.0, 0.0, 1e6]])
    x = to_counts(y, torch.tensor([10.0]), target_sum=1e4)
    assert x[0, 0] == 0 and x[0, 1] == 0 and torch.isfinite(x).all()


def test_apply_threshold():
    x = torch.tensor([[0.0, 0.2, 0.6, 1.4, 2.6]])
    np.testing.assert_array_equal(apply_threshold(x, 0.5, integer=True).numpy(), [[0, 0, 1, 1, 3]])
    np.testing.assert_allclose(
        apply_threshold(x, 0.5, integer=False).numpy(), [[0, 0, 0.6, 1.4, 2.6]]
    )
    assert apply_threshold(x, 0.0, integer=True)[0, 0] == 0  # zeros stay zeros


def test_value_quantile_matches_exact(rng):
    values = np.concatenate([np.zeros(300), rng.lognormal(0, 2, size=700)])
    q = ValueQuantile()
    for part in np.array_split(rng.permutation(values), 7):
        q.update(torch.as_tensor(part))
    tau = q.threshold_for_zero_fraction(0.6)
    assert np.mean(values < tau) >= 0.6
    assert np.mean(values < tau / 1.005) < 0.6 + 1e-9  # within one 0.23% bin
    assert q.threshold_for_zero_fraction(0.2) == 0.0


def test_draw_library_per_label(rng):
    library = np.array([10.0, 20.0, 0.0, 1000.0, 2000.0])
    train_codes = np.array([[0], [0], [1], [1], [1]])
    out = draw_library(library, train_codes, np.array([[0]] * 50 + [[1]] * 50), rng)
    assert set(out[:50]) <= {10.0, 20.0} and set(out[50:]) <= {1000.0, 2000.0}  # never a 0 library
    pooled = draw_library(library, np.zeros((5, 0), int), np.zeros((20, 0), int), rng)
    assert set(pooled) <= {10.0, 20.0, 1000.0, 2000.0}
