"""pl.discriminator_features."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex

import sc_sed


@pytest.fixture(scope="module")
def result():
    kw = {"n_genes": 40, "n_types": 2, "n_markers": 4, "library_size": 200.0}
    real = sc_sed.datasets.synthetic_counts(n_cells=300, seed=1, **kw)
    synth = sc_sed.datasets.synthetic_counts(n_cells=200, seed=2, **kw)
    synth.obs_names = [f"s{i}" for i in range(synth.n_obs)]
    synth.X = synth.X * 3  # deeper synthetic rows: log_library_size gives them away
    return sc_sed.tl.discriminator_features(
        real, synth, groupby="cell_type", n_pcs=4, n_folds=3, n_repeats=2
    )


def test_bars_sorted_top_first_and_coloured_by_kind(result):
    ax = sc_sed.pl.discriminator_features(result, n_features=5, show=False)
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    top = result[result["group"] == "all"].nlargest(5, "importance")["feature"].tolist()
    assert labels == top and labels[0] == "log_library_size"
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted(widths, reverse=True)
    kinds = result[result["group"] == "all"].set_index("feature").loc[top, "kind"]
    colors = [to_hex(p.get_facecolor()) for p in ax.patches]
    assert [c == "#d62728" for c in colors] == [k == "summary" for k in kinds]  # summaries red
    assert "AUROC" in ax.get_title()


def test_group_and_axes(result):
    _, ax = plt.subplots()
    out = sc_sed.pl.discriminator_features(result, group="type_1", ax=ax, show=False)
    assert out is ax and ax.get_title().startswith("type_1")


def test_errors(result):
    with pytest.raises(ValueError, match="group='nope'"):
        sc_sed.pl.discriminator_features(result, group="nope", show=False)
    with pytest.raises(ValueError, match="n_features"):
        sc_sed.pl.discriminator_features(result, n_features=0, show=False)
    with pytest.raises(ValueError, match="lacks the column"):
        sc_sed.pl.discriminator_features(result.drop(columns="importance"), show=False)
    with pytest.raises(TypeError, match="DataFrame"):
        sc_sed.pl.discriminator_features([1, 2], show=False)
