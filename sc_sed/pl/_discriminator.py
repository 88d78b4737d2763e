"""``discriminator_features``: bars of what gives synthetic rows away to a classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._utils import _finish, _single_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_KIND_COLORS = {"pc": "#7f7f7f", "summary": "#d62728"}
_NEEDED = ("group", "feature", "kind", "importance", "univariate_auroc")


def _check_result(df: pd.DataFrame, group: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        msg = (
            "`result` must be the DataFrame of `sc_sed.tl.discriminator_features`, "
            f"got {type(df).__name__}."
        )
        raise TypeError(msg)
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing:
        msg = f"`result` lacks the column(s) {missing}; pass `sc_sed.tl.discriminator_features`'s table."
        raise ValueError(msg)
    sub = df[df["group"].astype(str) == str(group)]
    if sub.empty:
        msg = f"group={group!r} is not in `result`; available: {list(dict.fromkeys(df['group']))}."
        raise ValueError(msg)
    return sub


def discriminator_features(
    result: pd.DataFrame,
    *,
    group: str = "all",
    n_features: int = 15,
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Horizontal bars of the permutation importances of :func:`sc_sed.tl.discriminator_features`.

    The ``n_features`` most important features of one group, most important at the top, with
    their spread over permutations as error bars; per-row summaries are red, principal components
    grey. Each bar is labelled with the feature's univariate AUROC (0.5: alone it tells nothing;
    above 0.5: higher in synthetic rows) and its spread AUROC (above 0.5: synthetic rows lie
    farther from the real median). The title gives the classifier's out-of-fold AUROC with
    all features and with the PCs only, when the table carries them.

    Parameters
    ----------
    result
        Table returned by :func:`sc_sed.tl.discriminator_features`.
    group
        Group to show (``"all"``: every row).
    n_features
        Number of features to show.
    ax
        Axes to draw on; ``None`` makes a new figure.
    show
        Show the figure; ``None`` shows it only for a new figure in interactive mode.

    Returns
    -------
    The Axes unless the figure was shown.

    Examples
    --------
    >>> df = sc_sed.tl.discriminator_features(adata_test, synth, layer="counts")
    >>> sc_sed.pl.discriminator_features(df)
    """
    if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer) or n_features < 1:
        msg = f"`n_features` must be a positive integer, got {n_features!r}."
        raise ValueError(msg)
    sub = _check_result(result, group).sort_values("importance", ascending=False, kind="stable")
    sub = sub.head(n_features)
    axes_given = ax is not None
    ax = _single_axes(ax, figsize=(4.5, 0.3 * len(sub) + 1.2))
    y = np.arange(len(sub))
    xerr = sub["importance_sd"].to_numpy() if "importance_sd" in sub.columns else None
    colors = [_KIND_COLORS.get(k, "#1f77b4") for k in sub["kind"]]
    ax.barh(y, sub["importance"].fillna(0).to_numpy(), xerr=xerr, color=colors, capsize=2)
    ends = sub["importance"].fillna(0).clip(lower=0) + (0 if xerr is None else np.nan_to_num(xerr))
    for yi, (end, label) in enumerate(zip(ends, _labels(sub), strict=True)):
        ax.annotate(
            label, (end, yi), xytext=(3, 0), textcoords="offset points", va="center",
            fontsize="x-small",
        )  # fmt: skip
    ax.set_yticks(y, list(sub["feature"]))
    ax.set_ylim(len(sub) - 0.5, -0.5)
    ax.axvline(0, color="0.6", linewidth=0.8)
    spread = "spread_auroc" in sub.columns
    ax.set_xlabel(
        "AUROC drop when permuted (labels: AUROC alone" + (" / of spread)" if spread else ")")
    )
    ax.set_title(_title(result, group), fontsize="medium")
    return _finish(ax, show=show, axes_given=axes_given)


def _labels(sub: pd.DataFrame) -> list[str]:
    """``univariate_auroc`` (and ``/spread_auroc`` when present) of each bar, blank for NaN."""
    spread = sub["spread_auroc"] if "spread_auroc" in sub.columns else [np.nan] * len(sub)
    return [
        "" if pd.isna(a) else f"{a:.2f}" + ("" if pd.isna(b) else f"/{b:.2f}")
        for a, b in zip(sub["univariate_auroc"], spread, strict=True)
    ]


def _title(result: pd.DataFrame, group: str) -> str:
    auroc = result.attrs.get("sc_sed", {}).get("auroc", {}).get(group)
    if not auroc:
        return str(group)
    return (
        f"{group}: AUROC {auroc['all_features']:.2f} "
        f"(PCs only {auroc['pcs_only']:.2f})"
    )
