"""``umap``: the co-embedding of real and synthetic rows made by :func:`sc_sed.tl.co_embed`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._utils import ORIGIN_COLORS, _finish, _multi_axes, _palette, _single_axes

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes

_ORIGINS = ("real", "synthetic")


def _color_values(adata: AnnData, color: str | None) -> pd.Series | None:
    """Return the obs column or feature values to colour by (None: a single colour)."""
    if color is None:
        return None
    if color in adata.obs.columns:
        return adata.obs[color].reset_index(drop=True)
    if color in adata.var_names:
        values = adata[:, color].X
        values = values.toarray() if hasattr(values, "toarray") else np.asarray(values)
        return pd.Series(values.ravel().astype(float))
    msg = f"color={color!r} is neither a column of `obs` nor a feature in `var_names`."
    raise KeyError(msg)


def _category_colors(adata: AnnData, color: str, cats: pd.Index, palette) -> dict:
    if isinstance(palette, Mapping):
        missing = [c for c in cats if c not in palette]
        if missing:
            msg = f"`palette` has no colour for categories {missing}."
            raise ValueError(msg)
        return {c: palette[c] for c in cats}
    if palette is not None:
        colors = list(palette)
    elif color == "origin" and list(cats) == list(_ORIGINS):
        colors = list(ORIGIN_COLORS)
    elif len(adata.uns.get(f"{color}_colors", [])) == len(cats):
        colors = list(adata.uns[f"{color}_colors"])
    else:
        colors = _palette(len(cats))
    return dict(zip(cats, (colors * len(cats))[: len(cats)], strict=True))


def _scatter(ax: Axes, xy: np.ndarray, values: pd.Series | None, rows: np.ndarray, style: dict):
    """One scatter of ``rows`` (drawn in the given order); returns the PathCollection."""
    if values is None:
        return ax.scatter(*xy[rows].T, color="0.3", **style["kw"])
    if style["categorical"]:
        colors = (
            values.iloc[rows].astype(object).map(style["colors"]).fillna("lightgray").to_numpy()
        )
        return ax.scatter(*xy[rows].T, c=list(colors), **style["kw"])
    return ax.scatter(
        *xy[rows].T,
        c=values.iloc[rows].to_numpy(),
        cmap=style["cmap"],
        vmin=style["vmin"],
        vmax=style["vmax"],
        **style["kw"],
    )


def _style(
    adata: AnnData, color: str | None, values: pd.Series | None, palette, size, cmap
) -> dict:
    size = size if size is not None else min(20.0, 12000.0 / max(adata.n_obs, 1))
    style = {
        "kw": {"s": size, "linewidths": 0, "plotnonfinite": True},
        "categorical": False,
        "cmap": cmap,
    }
    if values is None:
        return style
    if not pd.api.types.is_numeric_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.astype("category").cat.categories
        style |= {"categorical": True, "colors": _category_colors(adata, color, cats, palette)}
    else:
        style |= {"vmin": np.nanmin(values), "vmax": np.nanmax(values)}
    return style


def _decorate(ax: Axes, title: str | None, limits) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP1")
    ax.set_ylabel("UMAP2")
    ax.set_xlim(limits[0])
    ax.set_ylim(limits[1])
    if title:
        ax.set_title(title)


def _legend(ax: Axes, style: dict, artist, color: str | None) -> None:
    from matplotlib.lines import Line2D

    if style["categorical"]:
        handles = [
            Line2D([], [], marker="o", linestyle="", color=c, label=str(cat))
            for cat, c in style["colors"].items()
        ]
        ax.legend(
            handles=handles,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
            title=color,
        )
    elif color is not None:
        ax.figure.colorbar(artist, ax=ax, fraction=0.05, pad=0.02)


def _limits(xy: np.ndarray):
    lo, hi = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
    pad = 0.03 * np.maximum(hi - lo, 1e-9)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def _draw_order(values: pd.Series | None, style: dict, n: int, seed: int) -> np.ndarray:
    """Random order for categories (no set hides another); high values on top for numbers."""
    if values is not None and not style["categorical"]:
        return np.argsort(values.to_numpy(), kind="stable")
    return np.random.default_rng(seed).permutation(n)


def umap(
    co_embedded: AnnData,
    *,
    color: str | None = "origin",
    side_by_side: bool = False,
    size: float | None = None,
    palette: Sequence[str] | Mapping[str, str] | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    seed: int = 0,
    ax: Axes | None = None,
    axs: Sequence[Axes] | None = None,
    show: bool | None = None,
) -> Axes | list[Axes] | None:
    """Scatter plot of ``obsm["X_umap"]`` coloured by an obs column or a feature.

    Parameters
    ----------
    co_embedded
        Output of :func:`sc_sed.tl.co_embed` (any AnnData with ``obsm["X_umap"]`` works, and
        ``obs["origin"]`` is needed for ``side_by_side``).
    color
        Obs column (categorical: legend; numeric: colour bar) or feature name; ``None`` for one
        colour. The default ``"origin"`` tells real from synthetic rows.
    side_by_side
        Two panels, real rows left and synthetic rows right, with the same axis limits and
        colours; all rows are drawn in light grey underneath for context.
    size
        Marker size; by default it shrinks with the number of rows.
    palette
        Colours for a categorical ``color``: a list, or a mapping category -> colour. By default
        ``uns[f"{color}_colors"]`` when present, else a tab10/tab20 palette.
    cmap
        Colormap for a numeric ``color``.
    title
        Title (the panels are titled "real" and "synthetic" in ``side_by_side`` mode).
    seed
        Seed of the random drawing order of the points (so no set systematically hides another).
    ax
        Axes to draw on (single panel).
    axs
        Two Axes to draw on (``side_by_side=True``).
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The Axes (a list of two with ``side_by_side``) unless the figure was shown.
    """
    if "X_umap" not in co_embedded.obsm:
        msg = "`obsm['X_umap']` not found; compute the co-embedding with `sc_sed.tl.co_embed(real, synth)` first."
        raise KeyError(msg)
    if (side_by_side and ax is not None) or (not side_by_side and axs is not None):
        msg = "Pass `axs=` (two Axes) with side_by_side=True and `ax=` (one Axes) otherwise."
        raise ValueError(msg)
    xy = np.asarray(co_embedded.obsm["X_umap"])[:, :2]
    values = _color_values(co_embedded, color)
    style = _style(co_embedded, color, values, palette, size, cmap)
    order = _draw_order(values, style, co_embedded.n_obs, seed)
    limits = _limits(xy)
    if not side_by_side:
        panel = _single_axes(ax, figsize=(4.5, 4.0))
        artist = _scatter(panel, xy, values, order, style)
        _decorate(panel, title if title is not None else color, limits)
        _legend(panel, style, artist, color)
        return _finish(panel, show=show, axes_given=ax is not None)
    panels = _side_by_side(co_embedded, xy, values, order, style, axs, limits)
    _legend(panels[-1], style, panels[-1].collections[-1], color)
    return _finish(panels, show=show, axes_given=axs is not None)


def _side_by_side(adata, xy, values, order, style, axs, limits) -> list[Axes]:
    if "origin" not in adata.obs.columns:
        msg = "side_by_side=True needs `obs['origin']` ('real'/'synthetic'), as written by `sc_sed.tl.co_embed`."
        raise KeyError(msg)
    origin = adata.obs["origin"].astype(str).to_numpy()
    panels = _multi_axes(axs, 2, panel=(4.0, 4.0))
    background = {**style["kw"], "s": style["kw"]["s"] * 0.5}
    for panel, name in zip(panels, _ORIGINS, strict=True):
        panel.scatter(*xy.T, color="0.9", **background)
        _scatter(panel, xy, values, order[origin[order] == name], style)
        _decorate(panel, name, limits)
    return panels
