"""``pl.interactions``: panels, curve lengths and order, value views, input errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_sed


def _table(n_users: int, n_items: int, *, seed: int, values: str, dense: bool = False):
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)  # Zipf-like items
    mask = rng.random((n_users, n_items)) < 0.6 * popularity
    if values == "ratings":
        X = mask * rng.integers(1, 11, (n_users, n_items)) / 2  # half stars 0.5..5
    else:
        X = mask * np.round(np.exp(rng.normal(2, 2, (n_users, n_items))) + 1)  # play counts
    X = X.astype(np.float32)
    var = pd.DataFrame(index=[f"i{j}" for j in range(n_items)])
    obs = pd.DataFrame(index=[f"u{seed}_{i}" for i in range(n_users)])
    return ad.AnnData(X=X if dense else sparse.csr_matrix(X), obs=obs, var=var)


@pytest.mark.parametrize("dense", [False, True])
def test_three_panels_with_popularity_curves_of_the_right_length(dense):
    real = _table(80, 50, seed=1, values="counts", dense=dense)
    synth = _table(60, 50, seed=2, values="counts", dense=dense)
    axs = sc_sed.pl.interactions(real, synth, show=False)
    assert len(axs) == 3
    lines = axs[0].get_lines()
    assert [line.get_label() for line in lines] == ["real", "synthetic"]
    for line, adata in zip(lines, (real, synth), strict=True):
        x, y = line.get_xdata(), line.get_ydata()
        users_per_item = (sparse.csr_matrix(adata.X) != 0).sum(axis=0).A1
        assert len(y) == np.count_nonzero(users_per_item)  # items in use only
        np.testing.assert_array_equal(x, np.arange(1, len(y) + 1))
        assert np.all(np.diff(y) <= 0) and y[0] == users_per_item.max() / adata.n_obs
    assert axs[0].get_xscale() == "log" and axs[0].get_yscale() == "log"
    # many distinct counts: a value histogram on a log axis
    assert axs[2].get_xscale() == "log"


def test_user_activity_histogram_counts_every_active_user_once():
    real = _table(80, 50, seed=1, values="counts")
    synth = _table(60, 50, seed=2, values="counts")
    synth.X = sparse.vstack([sparse.csr_matrix((5, 50)), synth.X[5:]]).tocsr()  # 5 idle users
    axs = sc_sed.pl.interactions(real, synth, show=False)
    assert axs[1].get_xscale() == "log"
    steps = axs[1].patches
    assert len(steps) == 2
    for step, adata in zip(steps, (real, synth), strict=True):
        activity = (sparse.csr_matrix(adata.X) != 0).sum(axis=1).A1
        heights, edges = step.get_data()[:2]
        assert np.isclose(heights.sum(), np.count_nonzero(activity) / adata.n_obs)
        assert edges[0] <= activity[activity > 0].min() and edges[-1] > activity.max()
        assert np.all(edges == np.round(edges)) and np.all(np.diff(edges) >= 1)  # no empty teeth


def test_ratings_are_drawn_as_one_bar_per_value():
    real = _table(80, 30, seed=1, values="ratings")
    synth = _table(60, 30, seed=2, values="ratings")
    synth.X.data[:] = np.minimum(synth.X.data, 4.0)  # synthetic never gives above 4 stars
    axs = sc_sed.pl.interactions(real, synth, show=False)
    ticks = [t.get_text() for t in axs[2].get_xticklabels()]
    assert ticks == [f"{v:g}" for v in np.arange(1, 11) / 2]
    bars = axs[2].patches
    assert len(bars) == 20
    real_share = np.array([b.get_height() for b in bars[:10]])
    synth_share = np.array([b.get_height() for b in bars[10:]])
    assert np.isclose(real_share.sum(), 1) and np.isclose(synth_share.sum(), 1)
    assert np.all(synth_share[8:] == 0) and np.all(real_share[8:] > 0)


def test_inputs_are_not_modified_and_given_axes_are_used():
    import matplotlib.pyplot as plt

    real = _table(40, 20, seed=1, values="counts")
    synth = _table(30, 20, seed=2, values="counts")
    before = real.X.copy(), synth.X.copy()
    _, grid = plt.subplots(2, 2)
    axs = sc_sed.pl.interactions(real, synth, axs=grid, show=False)
    assert axs == list(grid.ravel()[:3])
    assert (before[0] != real.X).nnz == 0 and (before[1] != synth.X).nnz == 0


def test_bad_input_gives_clear_errors():
    real = _table(40, 20, seed=1, values="counts")
    synth = _table(30, 20, seed=2, values="counts")
    with pytest.raises(ValueError, match="var_names|features|items"):
        sc_sed.pl.interactions(real, synth[:, :10], show=False)
    with pytest.raises(ValueError, match="`bins`"):
        sc_sed.pl.interactions(real, synth, bins=0, show=False)
    with pytest.raises(ValueError, match="`labels`"):
        sc_sed.pl.interactions(real, synth, labels="real", show=False)
    with pytest.raises(ValueError, match="needs 3"):
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
        sc_sed.pl.interactions(real, synth, axs=[ax], show=False)
    with pytest.raises(KeyError):
        sc_sed.pl.interactions(real, synth, layer="counts", show=False)
