"""dropout_pattern and genes_detected."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection

import sc_sed.pl


def test_mean_vs_detection_overlays_two_sets(pair):
    real, synth = pair
    ax = sc_sed.pl.dropout_pattern(real, synth, show=False)
    assert isinstance(ax, Axes)
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2
    n_observed = np.count_nonzero(np.asarray(real.X.sum(axis=0)).ravel() > 0)
    assert len(scatters[0].get_offsets()) == n_observed
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real", "synthetic"]


def test_detection_scatter_uses_given_axes(pair):
    real, synth = pair
    _, given = plt.subplots()
    ax = sc_sed.pl.dropout_pattern(
        real, synth, kind="detection_scatter", labels=("obs", "gen"), ax=given, show=False
    )
    assert ax is given
    assert len(ax.collections) == 1 and len(ax.lines) == 1  # points + identity line
    offsets = ax.collections[0].get_offsets()
    assert offsets.shape == (real.n_vars, 2)
    np.testing.assert_allclose(offsets[:, 0], np.asarray((real.X != 0).mean(axis=0)).ravel())
    assert ax.get_xlabel() == "detection rate (obs)"
    assert ax.get_title().startswith("Pearson r =")


def test_both_panels(pair):
    axs = sc_sed.pl.dropout_pattern(*pair, kind="both", show=False)
    assert len(axs) == 2 and all(isinstance(a, Axes) for a in axs)
    assert axs[0].figure is axs[1].figure


def test_dropout_pattern_bad_arguments(pair):
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="Pass `axs=`"):
        sc_sed.pl.dropout_pattern(*pair, kind="both", ax=ax)
    with pytest.raises(ValueError, match="kind='violin' is not one of"):
        sc_sed.pl.dropout_pattern(*pair, kind="violin")
    with pytest.raises(ValueError, match="`labels` must be two strings"):
        sc_sed.pl.dropout_pattern(*pair, labels="real")
    real, synth = pair
    with pytest.raises(ValueError, match="Feature sets differ"):
        sc_sed.pl.dropout_pattern(real, synth[:, 2:].copy())


@pytest.mark.parametrize("kind", ["hist", "ecdf"])
def test_genes_detected(pair, kind):
    real, synth = pair
    axs = sc_sed.pl.genes_detected(real, synth, kind=kind, bins=20, show=False)
    assert len(axs) == 2
    if kind == "hist":
        assert len(axs[0].patches) == 2 and len(axs[1].patches) == 2  # one step outline per set
        assert axs[1].get_xscale() == "log"
    else:
        lines = axs[0].lines
        assert len(lines) == 2
        assert len(lines[0].get_xdata()) == real.n_obs and lines[0].get_ydata()[-1] == 1.0


def test_genes_detected_given_axes_and_errors(pair):
    _, given = plt.subplots(1, 3)
    axs = sc_sed.pl.genes_detected(*pair, log_total=False, axs=given, show=False)
    assert axs == list(given[:2])
    _, one = plt.subplots()
    with pytest.raises(ValueError, match="`axs` has 1 Axes but this plot needs 2"):
        sc_sed.pl.genes_detected(*pair, axs=[one])
    with pytest.raises(ValueError, match="kind='box'"):
        sc_sed.pl.genes_detected(*pair, kind="box")


def test_show_none_does_not_block_and_returns_axes(pair):
    assert isinstance(sc_sed.pl.dropout_pattern(*pair), Axes)  # Agg + non-interactive


def test_plots_do_not_modify_inputs(pair):
    real, synth = pair
    obs, var = real.obs.copy(), real.var.copy()
    sc_sed.pl.dropout_pattern(real, synth, kind="both")
    sc_sed.pl.genes_detected(real, synth)
    assert real.obs.equals(obs) and real.var.equals(var)
