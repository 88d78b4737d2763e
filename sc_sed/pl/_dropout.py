"""``dropout_pattern``: per-feature detection rate against mean, real vs synthetic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy.stats import pearsonr

from ._utils import (
    ORIGIN_COLORS,
    _check_labels,
    _finish,
    _multi_axes,
    _single_axes,
    _sparsity_pair,
)

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes

Kind = Literal["mean_vs_detection", "detection_scatter", "both"]


def _mean_vs_detection(
    ax: Axes, stats: dict, labels: tuple[str, str], *, size: float, alpha: float
) -> None:
    for (mean, det), label, color in zip(stats.values(), labels, ORIGIN_COLORS, strict=True):
        keep = mean > 0  # features never observed have no place on a log axis
        ax.scatter(
            mean[keep], det[keep], s=size, alpha=alpha, color=color, label=label, linewidths=0
        )
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean per feature")
    ax.set_ylabel("detection rate (fraction non-zero)")
    ax.legend(frameon=False, markerscale=2)


def _detection_scatter(
    ax: Axes, stats: dict, labels: tuple[str, str], *, size: float, alpha: float
) -> None:
    det_real, det_synth = stats["real"][1], stats["synth"][1]
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1, zorder=0)
    ax.scatter(det_real, det_synth, s=size, alpha=alpha, color="0.2", linewidths=0)
    if np.ptp(det_real) > 0 and np.ptp(det_synth) > 0:
        ax.set_title(f"Pearson r = {pearsonr(det_real, det_synth).statistic:.3f}")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel(f"detection rate ({labels[0]})")
    ax.set_ylabel(f"detection rate ({labels[1]})")


def dropout_pattern(
    real: AnnData,
    synth: AnnData,
    *,
    layer: str | None = None,
    kind: Kind = "mean_vs_detection",
    labels: Sequence[str] = ("real", "synthetic"),
    size: float = 6.0,
    alpha: float = 0.6,
    ax: Axes | None = None,
    axs: Sequence[Axes] | None = None,
    show: bool | None = None,
) -> Axes | list[Axes] | None:
    """Per-feature detection rate (fraction of rows non-zero) against mean, real vs synthetic.

    Parameters
    ----------
    real
        Real data.
    synth
        Synthetic data with the same features.
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    kind
        ``"mean_vs_detection"``: mean value per feature (log x-axis; features that are zero
        everywhere are left out) against detection rate, both sets overlaid.
        ``"detection_scatter"``: detection rate real (x) against synthetic (y) with the identity
        line and the Pearson correlation. ``"both"``: the two panels side by side.
    labels
        Names of the real and synthetic sets in the legend and axis labels.
    size
        Marker size.
    alpha
        Marker opacity.
    ax
        Axes to draw on (single-panel kinds).
    axs
        Two Axes to draw on (``kind="both"``).
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The Axes (a list of two for ``kind="both"``) unless the figure was shown.
    """
    labels = _check_labels(labels)
    if kind not in ("mean_vs_detection", "detection_scatter", "both"):
        msg = f"kind={kind!r} is not one of 'mean_vs_detection', 'detection_scatter', 'both'."
        raise ValueError(msg)
    if (kind == "both" and ax is not None) or (kind != "both" and axs is not None):
        msg = "Pass `axs=` (two Axes) with kind='both' and `ax=` (one Axes) with the other kinds."
        raise ValueError(msg)
    stats = {
        name: (var["sc_sed_mean"].to_numpy(), var["sc_sed_detection_rate"].to_numpy())
        for name, (var, _) in _sparsity_pair(real, synth, layer).items()
    }
    draw = {"mean_vs_detection": _mean_vs_detection, "detection_scatter": _detection_scatter}
    if kind == "both":
        panels = _multi_axes(axs, 2)
        for panel, fn in zip(panels, draw.values(), strict=True):
            fn(panel, stats, labels, size=size, alpha=alpha)
        return _finish(panels, show=show, axes_given=axs is not None)
    panel = _single_axes(ax)
    draw[kind](panel, stats, labels, size=size, alpha=alpha)
    return _finish(panel, show=show, axes_given=ax is not None)
