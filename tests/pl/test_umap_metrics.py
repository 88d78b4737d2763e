"""umap and metrics."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

import sc_sed.pl
import sc_sed.tl


def test_umap_categorical_origin(co_embedded):
    ax = sc_sed.pl.umap(co_embedded, show=False)
    assert isinstance(ax, Axes)
    assert len(ax.collections) == 1
    assert len(ax.collections[0].get_offsets()) == co_embedded.n_obs
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real", "synthetic"]
    assert len(np.unique(ax.collections[0].get_facecolors(), axis=0)) == 2


def test_umap_continuous_has_colorbar(co_embedded):
    ax = sc_sed.pl.umap(co_embedded, color="score", show=False)
    assert ax.get_legend() is None
    assert len(ax.figure.axes) == 2  # plot + colour bar
    ax = sc_sed.pl.umap(co_embedded, color="g3", show=False)  # a feature
    assert ax.get_title() == "g3"


def test_umap_side_by_side_shares_limits_and_colours(co_embedded):
    axs = sc_sed.pl.umap(co_embedded, color="cell_type", side_by_side=True, show=False)
    assert len(axs) == 2
    assert [a.get_title() for a in axs] == ["real", "synthetic"]
    assert axs[0].get_xlim() == axs[1].get_xlim() and axs[0].get_ylim() == axs[1].get_ylim()
    n_real = int((co_embedded.obs["origin"] == "real").sum())
    assert len(axs[0].collections[1].get_offsets()) == n_real  # grey background + real rows
    assert len(axs[1].collections[1].get_offsets()) == co_embedded.n_obs - n_real


def test_umap_errors(co_embedded):
    plain = ad.AnnData(np.zeros((3, 2)))
    with pytest.raises(KeyError, match="sc_sed.tl.co_embed"):
        sc_sed.pl.umap(plain)
    with pytest.raises(KeyError, match="color='nope' is neither"):
        sc_sed.pl.umap(co_embedded, color="nope")
    no_origin = co_embedded.copy()
    del no_origin.obs["origin"]
    with pytest.raises(KeyError, match="needs `obs\\['origin'\\]`"):
        sc_sed.pl.umap(no_origin, color=None, side_by_side=True)
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="Pass `axs=`"):
        sc_sed.pl.umap(co_embedded, side_by_side=True, ax=ax)


@pytest.fixture(scope="module")
def table():
    rows = []
    for method, offset in (("sed", 0.0), ("ddpm", 0.2)):
        for group in ("all", "t0", "t1"):
            rows.append(("scc", group, 0.9 - offset, "higher", 1.0, method))
            rows.append(("mmd", group, 0.1 + offset, "lower", 0.0, method))
        rows.append(("n_spurious_features", "all", 3 * offset, "lower", 0.0, method))
    return pd.DataFrame(rows, columns=["metric", "group", "value", "better", "ideal", "method"])


def test_metrics_one_panel_per_metric_bars_per_method(table):
    axs = sc_sed.pl.metrics(table, show=False)
    assert len(axs) == 3
    assert [a.get_title() for a in axs] == ["scc (↑)", "mmd (↓)", "n_spurious_features (↓)"]
    assert len(axs[0].patches) == 6  # 3 groups x 2 methods
    assert len(axs[2].patches) == 2  # overall only
    assert [t.get_text() for t in axs[0].get_yticklabels()] == ["all", "t0", "t1"]
    assert [t.get_text() for t in axs[-1].get_legend().get_texts()] == ["sed", "ddpm"]


def test_metrics_without_method_colours_groups(table):
    one = table[table["method"] == "sed"].drop(columns="method")
    axs = sc_sed.pl.metrics(one, metrics=["mmd"], groups=["t0", "t1"], show=False)
    assert len(axs) == 1 and len(axs[0].patches) == 2
    colours = {tuple(p.get_facecolor()) for p in axs[0].patches}
    assert len(colours) == 2


def test_metrics_from_evaluate(counts_pair_df):
    axs = sc_sed.pl.metrics(counts_pair_df, show=False)
    assert len(axs) == counts_pair_df["metric"].nunique()


@pytest.fixture
def counts_pair_df(pair):
    return sc_sed.tl.evaluate(
        *pair, metrics=["scc", "zero_fraction_synth", "zero_fraction_diff", "mmd"]
    )


def test_metrics_errors(table):
    with pytest.raises(ValueError, match="several rows for"):
        sc_sed.pl.metrics(pd.concat([table, table]))
    with pytest.raises(ValueError, match="lacks the column"):
        sc_sed.pl.metrics(table.drop(columns="value"))
    with pytest.raises(ValueError, match=r"metrics \['fid'\] are not in the table"):
        sc_sed.pl.metrics(table, metrics=["fid"])
    with pytest.raises(TypeError, match="pandas DataFrame"):
        sc_sed.pl.metrics(table.to_dict())
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="`axs` has 1 Axes but this plot needs 3"):
        sc_sed.pl.metrics(table, axs=[ax])
