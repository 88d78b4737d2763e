"""``metrics``: a compact visual summary of one or several ``sc_sed.tl.evaluate`` tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._utils import _finish, _multi_axes, _palette

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_ARROWS = {"higher": " (↑)", "lower": " (↓)", "closer": " (→ ideal)"}


def _check_table(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame):
        msg = f"`df` must be a pandas DataFrame from `sc_sed.tl.evaluate`, got {type(df).__name__}."
        raise TypeError(msg)
    missing = [c for c in ("metric", "value") if c not in df.columns]
    if missing:
        msg = (
            f"`df` lacks the column(s) {missing}; pass the table returned by `sc_sed.tl.evaluate`."
        )
        raise ValueError(msg)
    keys = [c for c in ("metric", "group", "method") if c in df.columns]
    dup = df.duplicated(keys)
    if dup.any():
        first = df.loc[dup, keys].iloc[0].to_dict()
        msg = f"`df` has several rows for {first}; aggregate them first (e.g. `df.groupby({keys})['value'].mean()`)."
        raise ValueError(msg)


def _select(
    df: pd.DataFrame, metrics: Sequence[str] | None, groups: Sequence[str] | None
) -> pd.DataFrame:
    df = df.copy()
    if "group" not in df.columns:
        df["group"] = "all"
    df["group"] = df["group"].astype(str)
    for key, wanted in (("metric", metrics), ("group", groups)):
        if wanted is None:
            continue
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        unknown = [w for w in wanted if w not in set(df[key])]
        if unknown:
            msg = (
                f"{key}s {unknown} are not in the table; available: {list(dict.fromkeys(df[key]))}."
            )
            raise ValueError(msg)
        df = df[df[key].isin(wanted)]
    return df


def _layout(df: pd.DataFrame) -> tuple[str, str]:
    """Key of the bar colours (hue) and of the y-axis rows."""
    hue = "method" if "method" in df.columns else "group"
    if hue == "method" and df["group"].nunique() > 1:
        return hue, "group"
    return hue, hue


def _bars(
    ax: Axes, sub: pd.DataFrame, rows: list, hues: list, keys: tuple[str, str], colors: dict
) -> None:
    hue_key, row_key = keys
    rows = [r for r in rows if r in set(sub[row_key])]  # e.g. overall-only metrics
    n_hue = 1 if hue_key == row_key else len(hues)
    height = 0.8 / n_hue
    for _, rec in sub.iterrows():
        i = rows.index(rec[row_key])
        j = 0 if n_hue == 1 else hues.index(rec[hue_key])
        y = i - 0.4 + height * (j + 0.5)
        ax.barh(y, rec["value"], height=height * 0.9, color=colors[rec[hue_key]])
        ideal = rec.get("ideal", np.nan)
        if pd.notna(ideal):
            ax.vlines(
                ideal, y - height / 2, y + height / 2, colors="k", linestyles="--", linewidth=1
            )
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.axvline(0, color="0.6", linewidth=0.8)


def metrics(
    df: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    palette: Sequence[str] | Mapping[str, str] | None = None,
    ncols: int = 4,
    panel_size: tuple[float, float] = (3.0, 2.2),
    axs: Sequence[Axes] | None = None,
    show: bool | None = None,
) -> list[Axes] | None:
    """Horizontal bars per metric, one panel per metric, from :func:`sc_sed.tl.evaluate` tables.

    Bars are coloured by ``method`` when the table has such a column (e.g. several methods'
    tables concatenated), otherwise by ``group``. With a ``method`` column and several groups,
    the y-axis lists the groups and each holds one bar per method. A dashed tick marks the
    ``ideal`` value; the panel title carries an arrow for the ``better`` direction.

    Parameters
    ----------
    df
        Table with columns ``metric`` and ``value`` (and usually ``group``, ``better``,
        ``ideal``, optionally ``method``), one row per (metric, group, method).
    metrics
        Metrics to show, in this order; ``None`` shows all, in table order.
    groups
        Groups to show; ``None`` shows all.
    palette
        Colours for the bar hues: a list, or a mapping hue -> colour.
    ncols
        Panels per row of the grid.
    panel_size
        Width and height of one panel in inches (new figures only).
    axs
        Axes to draw on, at least one per metric.
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    One Axes per metric unless the figure was shown.

    Examples
    --------
    >>> tables = [sc_sed.tl.evaluate(test, s).assign(method=m) for m, s in synth.items()]
    >>> sc_sed.pl.metrics(pd.concat(tables), groups=["all"])
    """
    _check_table(df)
    df = _select(df, metrics, groups)
    if df.empty:
        msg = "Nothing to plot: the table (after selecting metrics and groups) is empty."
        raise ValueError(msg)
    keys = _layout(df)
    hues, rows = list(dict.fromkeys(df[keys[0]])), list(dict.fromkeys(df[keys[1]]))
    colors = _hue_colors(hues, palette)
    names = list(dict.fromkeys(df["metric"]))
    panels = _multi_axes(axs, len(names), ncols=ncols, panel=panel_size)
    for ax, name in zip(panels, names, strict=True):
        sub = df[df["metric"] == name]
        _bars(ax, sub, rows, hues, keys, colors)
        better = sub["better"].iloc[0] if "better" in sub.columns else None
        ax.set_title(name + _ARROWS.get(better, ""), fontsize="medium")
    _hue_legend(panels[-1], keys, hues, colors)
    return _finish(panels, show=show, axes_given=axs is not None)


def _hue_colors(hues: list, palette) -> dict:
    if isinstance(palette, Mapping):
        missing = [h for h in hues if h not in palette]
        if missing:
            msg = f"`palette` has no colour for {missing}."
            raise ValueError(msg)
        return {h: palette[h] for h in hues}
    colors = list(palette) if palette is not None else _palette(len(hues))
    return dict(zip(hues, (colors * len(hues))[: len(hues)], strict=True))


def _hue_legend(ax: Axes, keys: tuple[str, str], hues: list, colors: dict) -> None:
    from matplotlib.patches import Patch

    if keys[0] == keys[1] and keys[0] == "group":
        return  # the y tick labels already name every bar
    handles = [Patch(color=colors[h], label=str(h)) for h in hues]
    ax.legend(
        handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title=keys[0]
    )
