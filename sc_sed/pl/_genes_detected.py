"""``genes_detected``: distributions of non-zeros per row and of row totals, real vs synthetic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from ._utils import ORIGIN_COLORS, _check_labels, _finish, _multi_axes, _sparsity_pair

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def _bins(values: list[np.ndarray], n_bins: int, *, log: bool) -> np.ndarray:
    pooled = np.concatenate(values)
    if log:
        positive = pooled[pooled > 0]
        lo, hi = (positive.min(), positive.max()) if positive.size else (1.0, 10.0)
        return np.geomspace(lo, hi if hi > lo else lo * 10, n_bins + 1)
    lo, hi = pooled.min(), pooled.max()
    return np.linspace(lo, hi if hi > lo else lo + 1, n_bins + 1)


def _draw(ax: Axes, values: list[np.ndarray], labels, *, kind: str, n_bins: int, log: bool) -> None:
    if kind == "hist":
        bins = _bins(values, n_bins, log=log)
        for v, label, color in zip(values, labels, ORIGIN_COLORS, strict=True):
            ax.hist(
                v, bins=bins, density=True, histtype="step", linewidth=1.5, color=color, label=label
            )
        ax.set_ylabel("density")
    else:
        for v, label, color in zip(values, labels, ORIGIN_COLORS, strict=True):
            ax.step(
                np.sort(v),
                np.arange(1, v.size + 1) / v.size,
                where="post",
                color=color,
                label=label,
            )
        ax.set_ylabel("fraction of rows (ECDF)")
    if log:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(frameon=False)


def genes_detected(
    real: AnnData,
    synth: AnnData,
    *,
    layer: str | None = None,
    kind: Literal["hist", "ecdf"] = "hist",
    labels: Sequence[str] = ("real", "synthetic"),
    bins: int = 50,
    log_total: bool = True,
    axs: Sequence[Axes] | None = None,
    show: bool | None = None,
) -> list[Axes] | None:
    """Distributions of the number of non-zeros per row and of the row totals (library sizes).

    Parameters
    ----------
    real
        Real data.
    synth
        Synthetic data with the same features.
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    kind
        ``"hist"``: density histograms on shared bins; ``"ecdf"``: empirical cumulative
        distribution functions.
    labels
        Names of the real and synthetic sets in the legends.
    bins
        Number of histogram bins.
    log_total
        Logarithmic x-axis (and bins) for the row totals; rows summing to zero are then left
        out of the histogram.
    axs
        Two Axes to draw on (non-zeros, totals).
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The two Axes unless the figure was shown.
    """
    labels = _check_labels(labels)
    if kind not in ("hist", "ecdf"):
        msg = f"kind={kind!r} is not one of 'hist', 'ecdf'."
        raise ValueError(msg)
    stats = _sparsity_pair(real, synth, layer)
    panels = _multi_axes(axs, 2)
    nnz = [obs["sc_sed_n_nonzero"].to_numpy(dtype=float) for _, obs in stats.values()]
    totals = [obs["sc_sed_total"].to_numpy(dtype=float) for _, obs in stats.values()]
    _draw(panels[0], nnz, labels, kind=kind, n_bins=bins, log=False)
    panels[0].set_xlabel("non-zero features per row")
    _draw(panels[1], totals, labels, kind=kind, n_bins=bins, log=log_total)
    panels[1].set_xlabel("total per row (library size)")
    return _finish(panels, show=show, axes_given=axs is not None)
