"""The metric catalogue (direction, ideal value) and the tidy result table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ._interactions import METRICS as _RECSYS
from ._interactions import NO_REFERENCE as _RECSYS_NO_REFERENCE

#: metric -> (better, ideal). ``better`` is "higher", "lower", "closer" (closest to ``ideal`` is
#: best) or "none" (a descriptive reference value).
METRICS: dict[str, tuple[str, float]] = {
    "scc": ("higher", 1.0),
    "mmd": ("lower", 0.0),
    "energy_distance": ("lower", 0.0),
    "wasserstein": ("lower", 0.0),
    "discriminability_auroc": ("lower", 0.5),
    "label_accuracy": ("higher", 1.0),
    "zero_fraction_real": ("none", np.nan),
    "zero_fraction_synth": ("closer", np.nan),  # ideal: zero_fraction_real of the same group
    "zero_fraction_diff": ("closer", 0.0),
    "detection_rate_pearson": ("higher", 1.0),
    "detection_rate_mae": ("lower", 0.0),
    "nnz_per_row_wasserstein": ("lower", 0.0),
    "n_spurious_features": ("lower", 0.0),
    "memorisation_ratio": ("closer", 1.0),
    "logfc_pearson": ("higher", 1.0),
    "logfc_pearson_split_half": ("none", np.nan),  # reference: two halves of the real rows
    "marker_precision": ("higher", 1.0),
    "marker_precision_split_half": ("none", np.nan),
}
PCA_METRICS = frozenset({"mmd", "energy_distance", "wasserstein", "discriminability_auroc"})
SPARSITY_METRICS = frozenset(
    {
        "zero_fraction_real",
        "zero_fraction_synth",
        "zero_fraction_diff",
        "detection_rate_pearson",
        "detection_rate_mae",
        "nnz_per_row_wasserstein",
    }
)
OVERALL_ONLY = frozenset({"n_spurious_features", "memorisation_ratio"})
MARKER_METRICS = frozenset(
    {"logfc_pearson", "logfc_pearson_split_half", "marker_precision", "marker_precision_split_half"}
)
COLUMNS = ["metric", "group", "value", "better", "ideal"]


def _recsys_catalogue() -> dict[str, tuple[str, float]]:
    """Return the recommender measures, each followed by its ``*_split_half`` reference row."""
    out = {}
    for name, spec in _RECSYS.items():
        out[name] = spec
        if name not in _RECSYS_NO_REFERENCE:
            out[name + "_split_half"] = ("none", np.nan)
    return out


#: ``evaluate(..., interactions=True)`` rows (:func:`~sc_sed.tl.interaction_metrics`).
INTERACTION_METRICS = frozenset(_recsys_catalogue())
METRICS.update(_recsys_catalogue())
#: A synthetic value whose ideal is the real value of the same group.
_IDEAL_FROM = {
    "zero_fraction_synth": "zero_fraction_real",
    "item_popularity_gini_synth": "item_popularity_gini_real",
}


def _wanted_metrics(
    metrics: Sequence[str] | None, *, has_groups: bool, has_train: bool
) -> frozenset[str]:
    """Validate the requested metric names; None means every metric the inputs allow."""
    needs = {
        "label_accuracy": (has_groups, "`groupby`"),
        "memorisation_ratio": (has_train, "`train`"),
    } | {name: (has_groups, "`groupby`") for name in sorted(MARKER_METRICS)}
    if metrics is None:
        return frozenset(m for m in METRICS if needs.get(m, (True, ""))[0])
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        msg = f"Unknown metrics {unknown}; choose from {list(METRICS)}."
        raise ValueError(msg)
    for name, (ok, arg) in needs.items():
        if name in metrics and not ok:
            msg = f"Metric {name!r} needs {arg}; pass it or drop {name!r} from `metrics`."
            raise ValueError(msg)
    return frozenset(metrics)


def _to_frame(records: Iterable[tuple[str, str, float]]) -> pd.DataFrame:
    """Tidy table with one row per (metric, group), in catalogue order within each group."""
    df = pd.DataFrame(list(records), columns=["metric", "group", "value"])
    df["value"] = df["value"].astype(float)
    df["better"] = df["metric"].map(lambda m: METRICS[m][0])
    df["ideal"] = df["metric"].map(lambda m: METRICS[m][1]).astype(float)
    for synth_metric, real_metric in _IDEAL_FROM.items():
        real_value = df[df["metric"] == real_metric].set_index("group")["value"]
        is_synth = df["metric"] == synth_metric
        df.loc[is_synth, "ideal"] = df.loc[is_synth, "group"].map(real_value).to_numpy(dtype=float)
    order = {m: i for i, m in enumerate(METRICS)}
    groups = list(dict.fromkeys(df["group"]))
    df = df.assign(_g=df["group"].map(groups.index), _m=df["metric"].map(order))
    return df.sort_values(["_g", "_m"], kind="stable")[COLUMNS].reset_index(drop=True)
