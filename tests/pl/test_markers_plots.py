"""markers and gene_means."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from scipy import sparse

import sc_sed.pl


def _marked(n_cells: int, *, seed: int, shuffle: bool = False) -> ad.AnnData:
    """Poisson counts; group g up-regulates genes 5g..5g+4 eight-fold (``shuffle``: labels permuted)."""
    n_genes = 40
    base = np.random.default_rng(0).normal(0.0, 0.8, n_genes)
    rng = np.random.default_rng(seed)
    groups = rng.integers(3, size=n_cells)
    up = np.zeros((3, n_genes))
    for g in range(3):
        up[g, 5 * g : 5 * g + 5] = np.log(8.0)
    counts = rng.poisson(np.exp(base + up[groups])).astype(np.float32)
    labels = rng.permutation(groups) if shuffle else groups
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical([f"c{g}" for g in labels])},
        index=[f"x{seed}_{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return ad.AnnData(X=sparse.csr_matrix(counts), obs=obs, var=var)


def test_markers_draws_and_returns_axes(pair):
    real, synth = pair
    real_before = real.X.copy()
    ax = sc_sed.pl.markers(real, synth, "cell_type", n_top=3, show=False)
    assert isinstance(ax, Axes)
    ax.figure.canvas.draw()
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == [f"t{g} ({o})" for g in range(3) for o in ("real", "synthetic")]
    assert 3 <= len(ax.get_xticks()) <= 9
    after = real.X.toarray() if sparse.issparse(real.X) else real.X
    before = real_before.toarray() if sparse.issparse(real_before) else real_before
    np.testing.assert_array_equal(after, before)
    assert "rank_genes_groups" not in real.uns and "log1p" not in real.uns


def test_markers_shows_each_groups_true_markers():
    real, synth = _marked(300, seed=1), _marked(300, seed=2, shuffle=True)
    _, given = plt.subplots()
    ax = sc_sed.pl.markers(real, synth, "cell_type", n_top=5, ax=given, show=False)
    assert ax is given
    genes = [t.get_text() for t in ax.get_xticklabels()]
    assert genes[:5] and {int(name[1:]) // 5 for name in genes[:5]} == {0}
    assert sorted(int(name[1:]) for name in genes) == list(range(15))
    dots = ax.collections[0]
    colours = np.asarray(dots.get_array()).reshape(6, 15)
    # group c0's real row is darkest on its markers; the shuffled synthetic row is not
    assert colours[0, :5].min() > 0.9
    assert colours[1, :5].max() < 0.9


def test_markers_group_absent_from_synth_has_an_empty_row():
    real, synth = _marked(200, seed=1), _marked(200, seed=2)
    synth = synth[synth.obs["cell_type"] != "c2"].copy()
    ax = sc_sed.pl.markers(real, synth, "cell_type", n_top=2, show=False)
    ax.figure.canvas.draw()
    assert len(ax.collections[0].get_offsets()) == 5 * 6  # 6 genes x 5 non-empty rows


def test_markers_bad_input(pair):
    real, synth = pair
    with pytest.raises(ValueError, match="n_top"):
        sc_sed.pl.markers(real, synth, "cell_type", n_top=0)
    with pytest.raises(KeyError, match="nope"):
        sc_sed.pl.markers(real, synth, "nope")


def test_gene_means_draws_one_colour_per_group(pair):
    real, synth = pair
    ax = sc_sed.pl.gene_means(real, synth, "cell_type", show=False)
    assert isinstance(ax, Axes)
    ax.figure.canvas.draw()
    assert len(ax.collections) == 3 and len(ax.lines) == 1  # groups + identity line
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    offsets = ax.collections[0].get_offsets()
    assert offsets.shape == (real.n_vars, 2) and np.all(np.asarray(offsets) > 0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("t0 (r=")


def test_gene_means_values_are_group_means_per_1e4():
    real = _marked(100, seed=1)
    _, given = plt.subplots()
    ax = sc_sed.pl.gene_means(real, real, "cell_type", groups=["c1"], ax=given, show=False)
    x, y = np.asarray(ax.collections[0].get_offsets()).T
    np.testing.assert_allclose(x, y)
    cells = real[real.obs["cell_type"] == "c1"].X.toarray()
    expected = (cells / cells.sum(axis=1, keepdims=True) * 1e4).mean(axis=0)
    positive = expected > 0
    np.testing.assert_allclose(x[positive], expected[positive], rtol=1e-6)
    assert "r=1.00" in ax.get_legend().get_texts()[0].get_text()


def test_gene_means_linear_without_normalisation_and_bad_groups(pair):
    real, synth = pair
    ax = sc_sed.pl.gene_means(real, synth, "cell_type", normalize=False, show=False)
    assert ax.get_xscale() == "linear"
    with pytest.raises(ValueError, match="not in both"):
        sc_sed.pl.gene_means(real, synth, "cell_type", groups=["nope"])
