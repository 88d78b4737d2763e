"""Scoring for ``benchmarks/augmentation.py``: PCA space, classifiers, metrics, paired CIs.

Every classifier works on 30 principal components of log-normalised counts
(``normalize_total`` to 1e4 per cell, ``log1p``); the PCA is fitted on the (augmented)
training set it classifies with, so synthetic cells shape the space as they would for a user.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from _common import t_interval
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

N_PCS = 30
CLASSIFIERS = ("logreg", "knn")
METRICS = ("rare_recall", "rare_f1", "macro_f1")


def lognorm(counts: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Dense float32 ``log1p`` of counts normalised to 1e4 per row."""
    x = sp.csr_matrix(counts, dtype=np.float32)
    size = np.asarray(x.sum(1)).ravel()
    x = sp.diags(1e4 / np.maximum(size, 1.0)) @ x
    return np.log1p(x.toarray()).astype(np.float32)


class Space:
    """PCA of log-normalised rows (``N_PCS`` components, fitted on ``x``), and its inverse."""

    def __init__(self, x: np.ndarray, seed: int):
        n = min(N_PCS, x.shape[0] - 1, x.shape[1])
        self.pca = PCA(n, svd_solver="randomized", random_state=seed).fit(x)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Principal-component scores of log-normalised rows."""
        return self.pca.transform(x)

    def inverse(self, pcs: np.ndarray) -> np.ndarray:
        """Log-normalised rows back from scores (the rank-``N_PCS`` approximation)."""
        return self.pca.inverse_transform(pcs)


def classifiers(seed: int) -> dict[str, Any]:
    """The two classifiers, fresh: linear and non-linear."""
    return {
        "logreg": LogisticRegression(max_iter=2000, random_state=seed),
        "knn": KNeighborsClassifier(n_neighbors=10),
    }


def smote(pcs: np.ndarray, n: int, seed: int, k: int = 5) -> np.ndarray:
    """Plain SMOTE: ``n`` points on segments from a random row to one of its ``k`` neighbours.

    The interpolation of Chawla et al. (2002) as :class:`imblearn.over_sampling.SMOTE` does it
    (uniform position on the segment, neighbours within the minority class).
    """
    rng = np.random.default_rng(seed)
    k = min(k, len(pcs) - 1)
    if n == 0 or k < 1:
        return pcs[rng.integers(0, len(pcs), n)]
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(pcs).kneighbors(pcs)[1][:, 1:]
    base = rng.integers(0, len(pcs), n)
    other = neighbours[base, rng.integers(0, k, n)]
    gap = rng.random((n, 1))
    return pcs[base] + gap * (pcs[other] - pcs[base])


def scores(y_true: np.ndarray, y_pred: np.ndarray, rare: str) -> dict[str, float]:
    """Rare-type recall and F1, macro F1 over the test set's types."""
    labels = np.unique(y_true)
    return {
        "rare_recall": float(recall_score(y_true == rare, y_pred == rare, zero_division=0)),
        "rare_f1": float(f1_score(y_true == rare, y_pred == rare, zero_division=0)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
    }


def classify(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    rare: str,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Fit each classifier on log-normalised training rows (PCA fitted on them); score the test."""
    space = Space(train_x, seed)
    xs, test = space.project(train_x), space.project(test_x)
    out = {}
    for name, clf in classifiers(seed).items():
        out[name] = scores(test_y, clf.fit(xs, train_y).predict(test), rare)
    return out


def marker_rows(real_test, synth_set, groupby: str, rare: str, seed: int) -> dict[str, float]:
    """``tl.marker_fidelity`` of the rare group: value and split-half reference."""
    import sc_sed

    logging.getLogger("sc_sed.tl").setLevel(logging.ERROR)
    df = sc_sed.tl.marker_fidelity(real_test, synth_set, groupby, layer="counts", seed=seed)
    out = {}
    for rec in df[df["group"] == rare].itertuples(index=False):
        out[rec.metric] = _num(rec.value)
        out[rec.metric + "_split_half"] = _num(rec.split_half)
    return out


def _num(v: Any) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def summarise(records: pd.DataFrame, baselines: Sequence[str]) -> list[dict[str, Any]]:
    """Per (set, type, n_rare, arm, classifier): mean metrics and paired CIs vs ``baselines``.

    ``records`` has one row per (set, type, n_rare, seed, arm, classifier) with ``METRICS``.
    """
    keys = ["set", "type", "n_rare"]
    out = []
    for (ds, rare, n_rare), block in records.groupby(keys, sort=False):
        wide = block.pivot_table(index=["seed", "classifier"], columns="arm", values=list(METRICS))
        for (arm, clf), rows in block.groupby(["arm", "classifier"], sort=False):
            entry = {"set": ds, "type": rare, "n_rare": int(n_rare), "arm": arm, "classifier": clf}
            entry |= {m: float(rows[m].mean()) for m in METRICS}
            entry["n_seeds"] = int(rows["seed"].nunique())
            for base in baselines:
                if base == arm or base not in wide.columns.get_level_values(1):
                    continue
                sub = wide.xs(clf, level="classifier")
                entry[f"vs_{base}"] = {
                    m: t_interval((sub[(m, arm)] - sub[(m, base)]).tolist()) for m in METRICS
                }
            out.append(entry)
    return out
