"""Shared plotting helpers: axes creation, colours, scanpy-like show/return behaviour."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Colours of the real and synthetic sets in every sc_sed plot.
ORIGIN_COLORS = ("#1f77b4", "#ff7f0e")


def _palette(n: int) -> list[str]:
    """``n`` distinct colours: tab10, tab20, then evenly spaced over a wide colormap."""
    from matplotlib.colors import to_hex

    if n <= 10:
        return [to_hex(c) for c in plt.get_cmap("tab10").colors[:n]]
    if n <= 20:
        return [to_hex(c) for c in plt.get_cmap("tab20").colors[:n]]
    return [to_hex(c) for c in plt.get_cmap("gist_rainbow")(np.linspace(0, 1, n, endpoint=False))]


def _single_axes(ax: Axes | None, *, figsize: tuple[float, float] = (4.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _multi_axes(
    axs: Sequence[Axes] | None,
    n: int,
    *,
    ncols: int | None = None,
    panel: tuple[float, float] = (4.0, 4.0),
) -> list[Axes]:
    """Return the given axes (at least ``n`` of them) or a new figure with ``n`` panels in a grid."""
    if axs is not None:
        axs = list(np.ravel(axs))
        if len(axs) < n:
            msg = f"`axs` has {len(axs)} Axes but this plot needs {n}; pass {n} Axes or leave `axs=None`."
            raise ValueError(msg)
        return axs[:n]
    ncols = min(n, ncols or n)
    nrows = int(np.ceil(n / ncols))
    fig, grid = plt.subplots(
        nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False
    )
    grid = list(grid.ravel())
    for extra in grid[n:]:
        extra.set_axis_off()
    fig.set_layout_engine("constrained")
    return grid[:n]


def _check_labels(labels: Sequence[str]) -> tuple[str, str]:
    if isinstance(labels, str) or len(labels) != 2:
        msg = f"`labels` must be two strings (real, synthetic), got {labels!r}."
        raise ValueError(msg)
    return str(labels[0]), str(labels[1])


def _finish(result, *, show: bool | None, axes_given: bool):
    """Show like scanpy (``None``: only for a new figure in interactive mode); else return."""
    if show is None:
        show = not axes_given and plt.isinteractive()
    if show:
        plt.show()
        return None
    return result
