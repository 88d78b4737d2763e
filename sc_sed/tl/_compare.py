"""Metrics for one (real, synthetic) pair of row subsets: the building block of ``evaluate``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from . import _metrics as M
from ._checks import Matrix
from ._preprocess import _normalized_means, _PCASpace, _subsample
from ._sparsity import _n_spurious_features, _sparsity_metrics
from ._table import PCA_METRICS, SPARSITY_METRICS

logger = logging.getLogger(__name__)


@dataclass
class _Settings:
    wanted: frozenset[str]
    normalize: bool
    max_cells: int | None
    classifier: M.Classifier
    n_folds: int
    n_neighbors: int


@dataclass
class _Subset:
    """All rows of one set (or group) plus PCs and labels of its seeded row subsample."""

    X: Matrix
    pcs: np.ndarray | None
    labels: np.ndarray | None


def _make_subset(
    X: Matrix,
    labels: np.ndarray | None,
    rows: np.ndarray,
    pca_rows: np.ndarray,
    space: _PCASpace | None,
    *,
    max_cells: int | None,
    rng: np.random.Generator,
) -> _Subset:
    """``rows`` feed the linear metrics; at most ``max_cells`` of ``pca_rows`` are projected."""
    sub = pca_rows[_subsample(len(pca_rows), max_cells, rng)]
    return _Subset(
        X=X if len(rows) == X.shape[0] else X[rows],
        pcs=space.transform(X[sub]) if space is not None else None,
        labels=labels[sub] if labels is not None else None,
    )


def _scc(real: Matrix, synth: Matrix, *, normalize: bool) -> float:
    a = _normalized_means(real, normalize=normalize)
    b = _normalized_means(synth, normalize=normalize)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        which = "real" if np.ptp(a) == 0 else "synthetic"
        logger.warning(
            "scc is NaN: every feature has the same mean in the %s rows (e.g. all-zero rows), "
            "so a rank correlation is undefined.",
            which,
        )
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _distribution_metrics(
    real: np.ndarray, synth: np.ndarray, cfg: _Settings, rng: np.random.Generator
) -> dict[str, float]:
    out = {}
    if "mmd" in cfg.wanted:
        out["mmd"] = M.mmd_rbf(real, synth, median=M.median_distance(real, rng))
    if "energy_distance" in cfg.wanted:
        out["energy_distance"] = M.energy_distance(real, synth)
    if "wasserstein" in cfg.wanted:
        out["wasserstein"] = M.wasserstein_assignment(real, synth, rng)
    if "discriminability_auroc" in cfg.wanted:
        out["discriminability_auroc"] = M.discriminability_auroc(
            real, synth, classifier=cfg.classifier, n_folds=cfg.n_folds, rng=rng
        )
    return out


def _label_accuracy(knn, synth: _Subset) -> float:
    known = np.array([lab is not None for lab in synth.labels], dtype=bool)
    if not known.any():
        return float("nan")
    return float(np.mean(knn.predict(synth.pcs[known]) == synth.labels[known]))


def _compare(
    real: _Subset, synth: _Subset, cfg: _Settings, rng: np.random.Generator, knn=None
) -> dict[str, float]:
    """Every per-group metric for one (real, synthetic) pair of subsets."""
    out: dict[str, float] = {}
    if "scc" in cfg.wanted:
        out["scc"] = _scc(real.X, synth.X, normalize=cfg.normalize)
    if SPARSITY_METRICS & cfg.wanted:
        out |= _sparsity_metrics(real.X, synth.X)
    if PCA_METRICS & cfg.wanted:
        out |= _distribution_metrics(real.pcs, synth.pcs, cfg, rng)
    if knn is not None:
        out["label_accuracy"] = _label_accuracy(knn, synth)
    return {k: v for k, v in out.items() if k in cfg.wanted}


def _fit_knn(real: _Subset, n_neighbors: int):
    """Fit a kNN classifier on the real PCs and labels (rows without a label are left out)."""
    from sklearn.neighbors import KNeighborsClassifier

    known = np.array([lab is not None for lab in real.labels], dtype=bool)
    if not known.any():
        msg = "No real row has a label in `groupby`; cannot compute label_accuracy."
        raise ValueError(msg)
    k = min(n_neighbors, int(known.sum()))
    return KNeighborsClassifier(n_neighbors=k).fit(real.pcs[known], real.labels[known])


def _memorisation_ratio(space: _PCASpace, train: Matrix, real: _Subset, synth: _Subset) -> float:
    """Median nearest-training-row distance of synthetic rows over that of real rows."""
    train_pcs = space.transform(train)
    d_synth = np.median(M.nearest_distances(train_pcs, synth.pcs))
    d_real = np.median(M.nearest_distances(train_pcs, real.pcs))
    if d_real == 0:
        logger.warning(
            "Real rows coincide with training rows (median distance 0); memorisation_ratio is NaN."
        )
        return float("nan")
    return float(d_synth / d_real)


def _overall_extras(
    X: dict[str, Matrix], space: _PCASpace | None, real: _Subset, synth: _Subset, cfg: _Settings
) -> dict[str, float]:
    """Metrics defined on the whole data only: spurious features and memorisation."""
    out = {}
    if "n_spurious_features" in cfg.wanted:
        refs = [X["real"]] + ([X["train"]] if "train" in X else [])
        out["n_spurious_features"] = float(_n_spurious_features(X["synth"], *refs))
    if "memorisation_ratio" in cfg.wanted:
        out["memorisation_ratio"] = _memorisation_ratio(space, X["train"], real, synth)
    return out
