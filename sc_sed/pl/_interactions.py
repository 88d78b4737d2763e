"""``interactions``: item popularity, user activity and values of users x items tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from sc_sed.data import row_nnz
from sc_sed.tl import shared_matrices

from ._utils import ORIGIN_COLORS, _check_labels, _finish, _multi_axes

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def item_popularity(X: sparse.csr_matrix) -> np.ndarray:
    """Numbers of users of the items with at least one user, most popular first."""
    counts = np.bincount(X.indices[X.data != 0], minlength=X.shape[1])
    counts = np.sort(counts)[::-1]
    return counts[counts > 0]


def _popularity(ax: Axes, X: list[sparse.csr_matrix], labels: tuple[str, str]) -> None:
    for x, label, color in zip(X, labels, ORIGIN_COLORS, strict=True):
        counts = item_popularity(x)
        ax.plot(np.arange(1, counts.size + 1), counts / x.shape[0], color=color, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("item rank")
    ax.set_ylabel("fraction of users per item")
    ax.legend(frameon=False)


def _activity(ax: Axes, X: list[sparse.csr_matrix], labels: tuple[str, str], n_bins: int) -> None:
    activity = [row_nnz(x) for x in X]
    pooled = np.concatenate(activity)
    positive = pooled[pooled > 0]
    lo, hi = (positive.min(), positive.max()) if positive.size else (1, 1)
    # integer edges: every bin holds at least one possible count (no empty comb teeth)
    bins = np.unique(np.round(np.geomspace(lo, hi + 1, n_bins + 1)))
    for a, label, color in zip(activity, labels, ORIGIN_COLORS, strict=True):
        heights, _ = np.histogram(a[a > 0], bins=bins)
        ax.stairs(heights / max(a.size, 1), bins, linewidth=1.5, color=color, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("interactions per user")
    ax.set_ylabel("fraction of users")
    ax.legend(frameon=False)


def _values(
    ax: Axes, X: list[sparse.csr_matrix], labels: tuple[str, str], n_bins: int, max_categories: int
) -> None:
    values = [x.data[x.data != 0] for x in X]
    pooled = np.concatenate(values)
    vocabulary = np.unique(pooled)
    if vocabulary.size <= max_categories:
        positions = np.arange(vocabulary.size)
        width = 0.4
        for i, (v, label, color) in enumerate(zip(values, labels, ORIGIN_COLORS, strict=True)):
            counts = np.searchsorted(vocabulary, v)
            share = np.bincount(counts, minlength=vocabulary.size) / max(v.size, 1)
            ax.bar(positions + (i - 0.5) * width, share, width=width, color=color, label=label)
        ax.set_xticks(positions, [f"{value:g}" for value in vocabulary])
        ax.set_ylabel("fraction of interactions")
    else:
        log = bool(pooled.min() > 0)
        if log:
            bins = np.geomspace(pooled.min(), pooled.max(), n_bins + 1)
        else:
            bins = np.linspace(pooled.min(), pooled.max(), n_bins + 1)
        for v, label, color in zip(values, labels, ORIGIN_COLORS, strict=True):
            heights, _ = np.histogram(v, bins=bins)
            ax.stairs(heights / max(v.size, 1), bins, linewidth=1.5, color=color, label=label)
        if log:
            ax.set_xscale("log")
        ax.set_ylabel("fraction of interactions")
    ax.set_xlabel("value of an interaction")
    ax.legend(frameon=False)


def interactions(
    real: AnnData,
    synth: AnnData,
    *,
    layer: str | None = None,
    labels: Sequence[str] = ("real", "synthetic"),
    bins: int = 40,
    max_categories: int = 20,
    align: bool = False,
    axs: Sequence[Axes] | None = None,
    show: bool | None = None,
) -> list[Axes] | None:
    """Item popularity curve, user activity and values of users (rows) x items, real vs synthetic.

    The three views a recommender user reads a synthetic table by; an interaction is a non-zero
    entry. Numbers are computed on sparse matrices without densifying; the inputs are never
    modified. :func:`sc_sed.tl.interaction_metrics` gives the matching measures.

    1. Item popularity: the fraction of a set's users who interact with each item, items
       ranked from the most popular, on log-log axes (a Zipf-like table is close to a straight
       line). Items without a user are left out, so each curve has as many points as its set
       has items in use.
    2. User activity: histogram of the number of interactions per user on logarithmic bins
       shared by both sets, as fractions of each set's users (sets of different sizes compare
       directly); users without an interaction are not drawn but count in the total.
    3. Values of the interactions: with at most ``max_categories`` distinct values in both
       sets together (ratings, 0/1 tables), the fraction of interactions with each value as
       bars; otherwise a histogram of the fractions on logarithmic bins and axis (linear when
       a value is negative).

    Parameters
    ----------
    real
        Real users x items.
    synth
        Synthetic users with the same items (``var_names``).
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    labels
        Names of the real and synthetic sets in the legends.
    bins
        Number of bins of the user-activity and value histograms.
    max_categories
        Largest number of distinct values drawn as bars, one per value.
    align
        Use the shared items (with a warning) if the item sets differ.
    axs
        Three Axes to draw on (popularity, activity, values).
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The three Axes unless the figure was shown.

    Examples
    --------
    >>> sc_sed.pl.interactions(users_test, synth)
    """
    labels = _check_labels(labels)
    for name, value in {"bins": bins, "max_categories": max_categories}.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            msg = f"`{name}` must be a positive integer, got {value!r}."
            raise ValueError(msg)
    X = list(shared_matrices(real, synth, layer=layer, align=align)[:2])
    panels = _multi_axes(axs, 3)
    _popularity(panels[0], X, labels)
    _activity(panels[1], X, labels, bins)
    if sum(x.count_nonzero() for x in X):
        _values(panels[2], X, labels, bins, max_categories)
    else:
        panels[2].set_xlabel("value of an interaction")
        panels[2].set_title("no interactions")
    return _finish(panels, show=show, axes_given=axs is not None)
