"""Shared plotting helpers: axes creation, colours, scanpy-like show/return behaviour."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sc_sed.tl import sparsity_stats

if TYPE_CHECKING:
    from anndata import AnnData
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


def _sparsity_pair(
    real: AnnData, synth: AnnData, layer: str | None
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """:func:`sc_sed.tl.sparsity_stats` of both sets, features in ``real``'s order.

    Raises when the two sets do not hold the same features (in any order).
    """
    stats = {"real": sparsity_stats(real, layer=layer), "synth": sparsity_stats(synth, layer=layer)}
    features = {name: var.index for name, (var, _) in stats.items()}
    for name, index in features.items():
        if not index.is_unique:
            msg = f"`{name}.var_names` has duplicates; call `.var_names_make_unique()` first."
            raise ValueError(msg)
    missing = features["real"].difference(features["synth"], sort=False)
    extra = features["synth"].difference(features["real"], sort=False)
    if len(missing) or len(extra):
        msg = (
            f"Feature sets differ: {len(missing)} features of `real` are missing from `synth` "
            f"({list(missing[:5])}) and `synth` has {len(extra)} features not in `real` "
            f"({list(extra[:5])}). Subset both to the same var_names."
        )
        raise ValueError(msg)
    var, obs = stats["synth"]
    stats["synth"] = (var.loc[features["real"]], obs)
    return stats


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
