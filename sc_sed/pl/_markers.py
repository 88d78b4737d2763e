"""``markers`` and ``gene_means``: whether the synthetic groups keep the real groups' genes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import sparse

from sc_sed._validation import check_count

from ..tl import normalized_pair, top_markers
from ._utils import ORIGIN_COLORS, _check_labels, _finish, _palette, _single_axes

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData
    from matplotlib.axes import Axes


_MAX_DOT = 120.0  # marker area of a gene detected in every row


def _row_stats(X: np.ndarray | sparse.spmatrix, rows: np.ndarray, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean value and fraction of non-zero rows of ``genes`` among ``rows`` (NaN if no rows)."""
    if len(rows) == 0:
        return np.full(len(genes), np.nan), np.full(len(genes), np.nan)
    sub = X[rows][:, genes]
    frac = sub.getnnz(axis=0) / len(rows) if sparse.issparse(sub) else np.mean(sub != 0, axis=0)
    return np.asarray(sub.mean(axis=0)).ravel(), np.asarray(frac).ravel()


def _marker_genes(pair, n_top: int, method: str) -> tuple[list[str], np.ndarray, list[int]]:
    """Return the real groups that can be ranked, their top markers (in group order) and block sizes."""
    k = min(n_top, pair.X["real"].shape[1])
    top = top_markers(pair.X["real"], pair.labels["real"], pair.groups, k, method=method)
    groups = [g for g in pair.groups if g in top]
    genes, blocks = [], []
    for g in groups:
        new = [j for j in top[g] if j not in genes]
        genes += new
        blocks.append(len(new))
    return groups, np.array(genes, dtype=int), blocks


def _dot_grid(pair, groups: list[str], genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and detected fraction per (group x origin) row and gene; means min-max scaled per gene."""
    means, fracs = [], []
    for g in groups:
        for origin in ("real", "synth"):
            rows = np.flatnonzero(pair.labels[origin] == g)
            mean, frac = _row_stats(pair.X[origin], rows, genes)
            means.append(mean)
            fracs.append(frac)
    means, fracs = np.array(means), np.array(fracs)
    lo, hi = np.nanmin(means, axis=0), np.nanmax(means, axis=0)  # real rows are never empty
    return (means - lo) / np.where(hi > lo, hi - lo, 1.0), fracs


def _draw_dots(ax: Axes, means: np.ndarray, fracs: np.ndarray, cmap: str):
    yy, xx = np.nonzero(np.isfinite(means))
    return ax.scatter(
        xx,
        yy,
        s=fracs[yy, xx] * _MAX_DOT,
        c=means[yy, xx],
        cmap=cmap,
        vmin=0.0,
        vmax=1.0,
        edgecolors="0.3",
        linewidths=0.3,
    )


def _decorate_markers(
    ax: Axes, groups: list[str], names, blocks: list[int], labels: tuple[str, str]
) -> None:
    rows = [f"{g} ({lab})" for g in groups for lab in labels]
    ax.set_yticks(range(len(rows)), rows)
    for tick, i in zip(ax.get_yticklabels(), range(len(rows)), strict=True):
        tick.set_color(ORIGIN_COLORS[i % 2])
    ax.set_xticks(range(len(names)), names, rotation=90)
    edges = np.cumsum(blocks)[:-1] - 0.5
    for x in edges:
        ax.axvline(x, color="0.8", linewidth=0.8)
    for y in np.arange(2, len(rows), 2) - 0.5:
        ax.axhline(y, color="0.8", linewidth=0.8)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("top markers of each real group (in group order)")


def _size_legend(ax: Axes) -> None:
    handles = [
        ax.scatter([], [], s=f * _MAX_DOT, color="0.5", label=f"{f:.0%}") for f in (0.25, 0.5, 1.0)
    ]
    ax.legend(
        handles=handles,
        title="detected in",
        loc="upper left",
        bbox_to_anchor=(1.02, 0.35),
        frameon=False,
    )


def markers(
    real: AnnData,
    synth: AnnData,
    groupby: str,
    *,
    n_top: int = 5,
    layer: str | None = None,
    normalize: bool = True,
    method: Literal["wilcoxon", "t-test", "t-test_overestim_var"] = "wilcoxon",
    labels: Sequence[str] = ("real", "synthetic"),
    cmap: str = "Reds",
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Dot plot of each real group's top markers, real and synthetic rows of the group side by side.

    The markers are the ``n_top`` top-ranked up-regulated genes of each real group against the
    rest (:func:`scanpy.tl.rank_genes_groups` on the normalised real rows). Each group has two
    rows, real then synthetic: dot area is the fraction of the group's rows in which the gene is
    detected, colour its mean normalised value (``log1p`` after scaling each row to 1e4), scaled
    per gene from its smallest (0) to its largest (1) mean over the rows of the plot (scanpy's
    ``standard_scale="var"``). A synthetic group that keeps its markers
    repeats the real row above it; a group absent from ``synth`` has an empty row.

    Parameters
    ----------
    real
        Real data (counts, or normalised values with ``normalize=False``).
    synth
        Synthetic data with the same features.
    groupby
        Column of ``obs`` in both objects with the groups (e.g. cell type).
    n_top
        Markers shown per group.
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    normalize
        Normalise to 1e4 per row and ``log1p`` before ranking and averaging.
    method
        Test ranking the markers in :func:`scanpy.tl.rank_genes_groups`.
    labels
        Names of the real and synthetic sets on the row labels.
    cmap
        Colormap of the scaled mean.
    ax
        Axes to draw on; ``None`` makes a new figure sized to the genes and groups.
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The Axes unless the figure was shown.
    """
    labels = _check_labels(labels)
    check_count(n_top, "n_top", "markers shown per group")
    pair = normalized_pair(real, synth, groupby, layer=layer, normalize=normalize, align=False)
    groups, genes, blocks = _marker_genes(pair, n_top, method)
    means, fracs = _dot_grid(pair, groups, genes)
    size = (2.5 + 0.3 * len(genes), 1.0 + 0.45 * len(means))
    panel = _single_axes(ax, figsize=size)
    dots = _draw_dots(panel, means, fracs, cmap)
    _decorate_markers(panel, groups, pair.var_names[genes].astype(str), blocks, labels)
    panel.figure.colorbar(dots, ax=panel, label="mean (scaled per gene)", shrink=0.5, anchor=(0, 1))
    _size_legend(panel)
    return _finish(panel, show=show, axes_given=ax is not None)


def _group_means(pair, group: str, *, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene means of one group in both sets: per 1e4 counts (``normalize``) or raw values."""
    out = []
    for origin in ("real", "synth"):
        X = pair.X[origin][pair.labels[origin] == group]
        if normalize:  # undo the log1p: means of the values scaled to 1e4 per row
            X = X.expm1() if sparse.issparse(X) else np.expm1(X)
        out.append(np.asarray(X.mean(axis=0)).ravel())
    return out[0], out[1]


def gene_means(
    real: AnnData,
    synth: AnnData,
    groupby: str,
    *,
    layer: str | None = None,
    normalize: bool = True,
    groups: Sequence[str] | None = None,
    size: float = 6.0,
    alpha: float = 0.6,
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Per-gene mean in each group, real (x) against synthetic (y), one colour per group.

    With ``normalize=True`` the means are of the values scaled to 1e4 per row, on log axes; a gene
    with mean 0 on one side is drawn at the floor (half the smallest positive mean), on the edge of
    the plot. With ``normalize=False`` the means of the given values are drawn on linear axes. The
    dashed line is the identity; the legend gives each group's Pearson correlation of the
    log-means (of the means with ``normalize=False``) over genes detected in either set.

    Parameters
    ----------
    real
        Real data.
    synth
        Synthetic data with the same features.
    groupby
        Column of ``obs`` in both objects with the groups.
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    normalize
        Scale each row to 1e4 before averaging; ``False`` for already normalised values.
    groups
        Groups to draw (present in both sets); ``None`` draws every real group found in ``synth``.
    size
        Marker size.
    alpha
        Marker opacity.
    ax
        Axes to draw on.
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The Axes unless the figure was shown.
    """
    pair = normalized_pair(real, synth, groupby, layer=layer, normalize=normalize, align=False)
    groups = _check_groups(pair, groups)
    means = {g: _group_means(pair, g, normalize=normalize) for g in groups}
    panel = _single_axes(ax, figsize=(4.5, 4.5))
    floor = _floor(means) if normalize else None
    for g, color in zip(groups, _palette(len(groups)), strict=True):
        x, y = means[g]
        r = _log_pearson(x, y, floor)
        if floor is not None:
            x, y = np.maximum(x, floor), np.maximum(y, floor)
        panel.scatter(
            x, y, s=size, alpha=alpha, color=color, linewidths=0, label=f"{g} (r={r:.2f})"
        )
    _decorate_means(panel, means, floor)
    return _finish(panel, show=show, axes_given=ax is not None)


def _check_groups(pair, groups: Sequence[str] | None) -> list[str]:
    in_synth = set(pair.labels["synth"])
    shared = [g for g in pair.groups if g in in_synth]
    if groups is None:
        if not shared:
            msg = "No group of `real` is present in `synth`; check `groupby` and the labels."
            raise ValueError(msg)
        return shared
    groups = [groups] if isinstance(groups, str) else [str(g) for g in groups]
    unknown = [g for g in groups if g not in shared]
    if unknown:
        msg = f"groups {unknown} are not in both `real` and `synth`; available: {shared}."
        raise ValueError(msg)
    return groups


def _floor(means: dict) -> float:
    positive = np.concatenate([m[m > 0] for pair in means.values() for m in pair])
    return float(positive.min() / 2) if positive.size else 1e-3


def _log_pearson(x: np.ndarray, y: np.ndarray, floor: float | None) -> float:
    keep = (x != 0) | (y != 0)
    if floor is not None:
        x, y = np.log10(np.maximum(x, floor)), np.log10(np.maximum(y, floor))
    x, y = x[keep], y[keep]
    if keep.sum() < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _decorate_means(ax: Axes, means: dict, floor: float | None) -> None:
    values = np.concatenate([np.concatenate(pair) for pair in means.values()])
    lo = floor if floor is not None else float(values.min())
    hi = float(values.max())
    ax.plot([lo, hi], [lo, hi], color="0.5", linestyle="--", linewidth=1, zorder=0)
    if floor is not None:
        ax.set_xscale("log")
        ax.set_yscale("log")
    unit = "mean per 1e4 counts" if floor is not None else "mean value"
    ax.set_xlabel(f"{unit} (real)")
    ax.set_ylabel(f"{unit} (synthetic)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(frameon=False, markerscale=2, fontsize="small", title="group")
