"""``interaction_metrics``: recommender measures of synthetic user x item tables.

Every measure is given beside a reference from real users alone (see
:func:`interaction_metrics`), so that a value is read against what two samples of the real
users give. Values are used as they are (no normalisation); "interaction" means a non-zero entry.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import ks_2samp, spearmanr, wasserstein_distance

from sc_sed._validation import check_count

from ._checks import prepare_inputs
from ._recommender import binarize, hold_out, item_similarity, recall_ndcg

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

#: metric -> (better, ideal); ``ideal`` NaN where it depends on the data.
METRICS: dict[str, tuple[str, float]] = {
    "item_popularity_spearman": ("higher", 1.0),
    "item_popularity_gini_real": ("none", np.nan),
    "item_popularity_gini_synth": ("closer", np.nan),  # ideal: the real Gini
    "item_popularity_gini_diff": ("lower", 0.0),
    "user_activity_wasserstein": ("lower", 0.0),
    "log_value_ks": ("lower", 0.0),
    "top_pairs_overlap": ("higher", 1.0),
    "tstr_recall": ("higher", np.nan),  # ideal: the recall of the real-trained recommender
    "tstr_ndcg": ("higher", np.nan),
    "tstr_recall_ratio": ("higher", 1.0),
    "tstr_ndcg_ratio": ("higher", 1.0),
}
#: Metrics without a reference: descriptive, or already relative to the real-trained recommender.
NO_REFERENCE = frozenset(
    {
        "item_popularity_gini_real",
        "item_popularity_gini_synth",
        "tstr_recall_ratio",
        "tstr_ndcg_ratio",
    }
)
_WHY_NAN = {
    "item_popularity_spearman": "item popularity is constant in a set (one item, no interactions)",
    "item_popularity_gini": "a set has no interactions",
    "user_activity_wasserstein": "a set has no rows",
    "log_value_ks": "a set has no non-zero values",
    "top_pairs_overlap": "no two items share a user in either set",
    "tstr": "no held-out real user has 2 interactions, or the real-trained recommender finds none "
    "of the hidden items (ratio undefined)",
}
MIN_USERS = 4


def interaction_metrics(
    real: AnnData,
    synth: AnnData,
    *,
    train: AnnData | None = None,
    layer: str | None = None,
    k: int = 20,
    n_pairs: int = 100,
    max_items: int = 2000,
    seed: int = 0,
    align: bool = False,
) -> pd.DataFrame:
    """Recommender measures of synthetic users (rows) x items, each with a real reference.

    The real users are split into two random halves (seeded); synthetic users are drawn, without
    replacement, as many as a half has (all of them if fewer). ``value`` averages the comparisons
    of each half with its synthetic draw; ``split_half`` is the same measure between the two real
    halves, at the same sample sizes: read ``0.85`` against the halves' ``0.90``.

    * ``item_popularity_spearman`` (higher, ideal 1): Spearman correlation of the per-item
      numbers of users, over the items with an interaction in ``real`` or ``synth``.
    * ``item_popularity_gini_real`` (reference), ``item_popularity_gini_synth`` (closest to the
      real value) and ``item_popularity_gini_diff`` (their absolute difference, lower): Gini
      coefficient of item popularity over the same items (0: all items equally popular).
    * ``user_activity_wasserstein`` (lower, 0): 1-Wasserstein distance between the numbers of
      interactions per user.
    * ``log_value_ks`` (lower, 0): Kolmogorov-Smirnov statistic between the non-zero values
      after ``sign(v) * log1p(|v|)`` (play counts, ratings); 0 for implicit 0/1 tables.
    * ``top_pairs_overlap`` (higher, 1): fraction of shared pairs among the ``n_pairs`` item
      pairs that most users have in common (counts of ``B.T @ B`` on the binarised table,
      restricted to its ``max_items`` most popular items; ties by item index).
    * ``tstr_recall`` and ``tstr_ndcg`` (higher): train on synthetic, test on real. An exact
      item-kNN recommender (cosine similarity between the item columns of binarised training
      users; an item's score is the sum of its similarities to a user's known items; known items
      are never recommended, nor items with score 0) is fitted on synthetic users and scored by
      recall@k and NDCG@k on held-out real users: each one with at least 2 interactions has a
      seeded random 20% (at least 1) of its items hidden and the rest shown. Their
      ``split_half`` is the same recommender fitted on real users: with ``train=None`` one real
      half trains and the other is scored (both ways, averaged; the synthetic draw matches the
      training half); with ``train`` the real training users train (and as many synthetic users
      as ``train`` has) and all of ``real`` is scored.
    * ``tstr_recall_ratio`` and ``tstr_ndcg_ratio`` (higher, ideal 1): ``value`` over
      ``split_half`` of the rows above (no reference of their own).

    A measure that is undefined on the inputs is NaN with a logged reason. Cost: the recommender
    holds an items x items sparse similarity (at most the sum over training users of their
    number of items squared) and scores users in blocks of 256 x items. The inputs are never
    modified.

    Parameters
    ----------
    real
        Held-out real users x items (values: implicit 1s, counts or ratings).
    synth
        Synthetic users with the same items (``var_names``).
    train
        The generator's training users; the real-trained recommender is fitted on them.
    layer
        Layer holding the values in every object; ``None`` uses ``.X``.
    k
        Length of the recommendation list for recall@k and NDCG@k.
    n_pairs
        Number of top co-occurring item pairs compared.
    max_items
        Number of most popular items of a set among which co-occurring pairs are counted.
    seed
        Seed of the halves, of the synthetic draws and of the hidden interactions.
    align
        Use the shared items (with a warning) if the item sets differ.

    Returns
    -------
    Table with columns ``metric``, ``value``, ``split_half``, ``better`` (``"higher"``,
    ``"lower"``, ``"closer"`` to ``ideal``, ``"none"`` for a reference) and ``ideal``;
    ``attrs["sc_sed"]`` records the settings.

    Examples
    --------
    >>> df = sc_sed.tl.interaction_metrics(users_test, synth, train=users_train)
    >>> df.set_index("metric")[["value", "split_half"]]
    """
    _check_args(k=k, n_pairs=n_pairs, max_items=max_items)
    adatas = {"real": real, "synth": synth} | ({"train": train} if train is not None else {})
    inputs = prepare_inputs(adatas, layer=layer, normalize=False, align=align)
    X = {name: sparse.csr_matrix(x) for name, x in inputs.X.items()}
    if X["real"].shape[0] < MIN_USERS:
        msg = (
            f"`real` has {X['real'].shape[0]} users; the split-half references need at least "
            f"{MIN_USERS}. Pass more held-out real users."
        )
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    halves = _halves(X["real"].shape[0], rng)
    draws = [_draw(X["synth"].shape[0], len(h), rng) for h in halves]
    items = np.flatnonzero((X["real"].getnnz(axis=0) + X["synth"].getnnz(axis=0)) > 0)
    sets = [X["real"][h] for h in halves] + [X["synth"][d] for d in draws]
    rows = _distribution_rows(sets, items, n_pairs=n_pairs, max_items=max_items)
    rows |= _tstr_rows(X, halves, draws, k=k, rng=rng)
    df = _frame(rows)
    df.attrs["sc_sed"] = {"k": k, "n_pairs": n_pairs, "max_items": max_items, "seed": seed}
    df.attrs["sc_sed"] |= {"layer": layer, "reference": "split_half" if train is None else "train"}
    return df


def interaction_records(
    real: AnnData, synth: AnnData, *, wanted: frozenset[str], **kwargs
) -> list[tuple[str, str, float]]:
    """``(metric, "all", value)`` rows for ``evaluate``: each measure and its reference.

    ``kwargs`` go to :func:`interaction_metrics`; only the metrics named in ``wanted`` are kept.
    """
    records = []
    for rec in interaction_metrics(real, synth, **kwargs).itertuples(index=False):
        records.append((rec.metric, "all", rec.value))
        if rec.metric not in NO_REFERENCE:
            records.append((rec.metric + "_split_half", "all", rec.split_half))
    return [r for r in records if r[0] in wanted]


def _check_args(**kwargs: int) -> None:
    for name, value in kwargs.items():
        check_count(value, name)


def _halves(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    perm = rng.permutation(n)
    return [np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])]


def _draw(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(n, size), replace=False))


def _distribution_rows(sets, items, *, n_pairs: int, max_items: int) -> dict:
    """``{metric: (value, split_half)}`` of the distribution measures.

    ``sets`` is ``[half 1, half 2, synth as half 1, synth as half 2]``.
    """
    ref = _pair_measures(sets[0], sets[1], items, n_pairs, max_items)
    vs = [_pair_measures(sets[i], sets[i + 2], items, n_pairs, max_items) for i in (0, 1)]
    rows = {m: (_mean(v[m] for v in vs), ref[m]) for m in ref if not m.startswith("gini")}
    rows["item_popularity_gini_real"] = (_mean(v["gini_a"] for v in vs), np.nan)
    rows["item_popularity_gini_synth"] = (_mean(v["gini_b"] for v in vs), np.nan)
    diff_ref = abs(ref["gini_a"] - ref["gini_b"])
    diff = _mean(abs(v["gini_a"] - v["gini_b"]) for v in vs)
    rows["item_popularity_gini_diff"] = (diff, diff_ref)
    return rows


def _pair_measures(A, B, items: np.ndarray, n_pairs: int, max_items: int) -> dict[str, float]:
    pop_a, pop_b = A.getnnz(axis=0)[items], B.getnnz(axis=0)[items]
    return {
        "item_popularity_spearman": _spearman(pop_a, pop_b),
        "gini_a": gini(pop_a),
        "gini_b": gini(pop_b),
        "user_activity_wasserstein": _wasserstein(A.getnnz(axis=1), B.getnnz(axis=1)),
        "log_value_ks": _ks(_log_values(A), _log_values(B)),
        "top_pairs_overlap": _overlap(
            top_pairs(A, n_pairs, max_items), top_pairs(B, n_pairs, max_items)
        ),
    }


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative ``x`` (0: all equal; near 1: one holds everything)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    if len(x) == 0 or x.sum() <= 0:
        return float("nan")
    ranks = np.arange(1, len(x) + 1)
    return float(2.0 * np.sum(ranks * x) / (len(x) * x.sum()) - (len(x) + 1) / len(x))


def top_pairs(X: sparse.csr_matrix, n_pairs: int, max_items: int) -> np.ndarray:
    """Codes ``i * n_items + j`` (``i < j``) of the ``n_pairs`` item pairs most users share.

    Counted among the ``max_items`` most popular items, so ``B.T @ B`` stays small.
    """
    B = binarize(X)
    pop = B.getnnz(axis=0)
    items = np.flatnonzero(pop)
    items = items[np.argsort(-pop[items], kind="stable")[:max_items]]
    sub = B[:, np.sort(items)]
    C = sparse.triu(sub.T @ sub, k=1).tocoo()
    kept = np.sort(items)
    codes = kept[C.row].astype(np.int64) * X.shape[1] + kept[C.col]
    order = np.lexsort((codes, -C.data))[:n_pairs]
    return codes[order]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    if max(len(a), len(b)) == 0:
        return float("nan")
    return len(np.intersect1d(a, b)) / max(len(a), len(b))


def _log_values(X: sparse.csr_matrix) -> np.ndarray:
    v = X.data[X.data != 0]
    return np.sign(v) * np.log1p(np.abs(v))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(a, b).statistic)


def _wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    return float(wasserstein_distance(a, b)) if len(a) and len(b) else float("nan")


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    return float(ks_2samp(a, b).statistic) if len(a) and len(b) else float("nan")


def _mean(values) -> float:
    values = np.array(list(values), dtype=np.float64)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else np.nan


def _tstr_rows(X: dict, halves, draws, *, k: int, rng: np.random.Generator) -> dict:
    """Train on synthetic, test on real: recall@k and NDCG@k beside the real-trained recommender."""
    if "train" in X:
        synth = X["synth"][_draw(X["synth"].shape[0], X["train"].shape[0], rng)]
        runs = [(X["train"], synth, X["real"])]
    else:
        real = [X["real"][h] for h in halves]
        runs = [(real[i], X["synth"][draws[i]], real[1 - i]) for i in (0, 1)]
    real_scores, synth_scores = [], []
    for real_train, synth_train, test in runs:
        held = hold_out(binarize(test), rng)
        if held is None:
            continue
        real_scores.append(recall_ndcg(item_similarity(binarize(real_train)), held, k))
        synth_scores.append(recall_ndcg(item_similarity(binarize(synth_train)), held, k))
    real_mean = np.mean(real_scores, axis=0) if real_scores else np.full(2, np.nan)
    synth_mean = np.mean(synth_scores, axis=0) if synth_scores else np.full(2, np.nan)
    ratio = np.divide(synth_mean, real_mean, out=np.full(2, np.nan), where=real_mean > 0)
    return {
        "tstr_recall": (synth_mean[0], real_mean[0]),
        "tstr_ndcg": (synth_mean[1], real_mean[1]),
        "tstr_recall_ratio": (ratio[0], np.nan),
        "tstr_ndcg_ratio": (ratio[1], np.nan),
    }


def _frame(rows: dict) -> pd.DataFrame:
    """Tidy table in catalogue order; every NaN that is not by design is logged with its reason."""
    df = pd.DataFrame(
        [(m, *rows[m]) for m in METRICS], columns=["metric", "value", "split_half"]
    ).astype({"value": float, "split_half": float})
    df["better"] = df["metric"].map(lambda m: METRICS[m][0])
    df["ideal"] = df["metric"].map(lambda m: METRICS[m][1]).astype(float)
    gini_real = rows["item_popularity_gini_real"][0]
    df.loc[df["metric"] == "item_popularity_gini_synth", "ideal"] = gini_real
    for rec in df.itertuples(index=False):
        if np.isnan(rec.value) or (np.isnan(rec.split_half) and rec.metric not in NO_REFERENCE):
            logger.warning("Interaction metric %s is NaN: %s.", rec.metric, _reason(rec.metric))
    return df


def _reason(metric: str) -> str:
    for prefix, why in _WHY_NAN.items():
        if metric.startswith(prefix):
            return why
    return "undefined on these inputs"
