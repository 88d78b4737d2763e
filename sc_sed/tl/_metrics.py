"""Distances between two sets of rows in the (PCA) evaluation space.

All functions take dense ``(n, d)`` arrays that the caller has already subsampled; their cost is
quadratic (Wasserstein: cubic) in the number of rows, their memory is bounded by row blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist, pdist

from sc_sed._threads import single_openmp_thread

logger = logging.getLogger(__name__)

Classifier = Literal["gradient_boosting", "logistic"]

#: RBF bandwidths, as multiples of the median pairwise distance among the real rows.
MMD_BANDWIDTH_SCALES = (0.5, 1.0, 2.0)
_BLOCK = 2048
_MEDIAN_MAX_ROWS = 1000


def _blocked_sum(A: np.ndarray, B: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> float:
    """``sum_ij fn(|a_i - b_j|^2)`` computed block by block.

    Blocks of 2,048 rows bound memory: the full ``n × m`` float64 matrix of 10⁵ real and
    10⁵ synthetic rows would take 80 GB, a block of it 1.6 GB.
    """
    from sklearn.metrics.pairwise import euclidean_distances

    return float(
        sum(fn(euclidean_distances(A[rows], B, squared=True)).sum() for rows in _blocks(len(A)))
    )


def _blocks(n: int):
    for start in range(0, n, _BLOCK):
        yield slice(start, min(start + _BLOCK, n))


def median_distance(X: np.ndarray, rng: np.random.Generator) -> float:
    """Median pairwise Euclidean distance among (at most 1000 randomly chosen) rows of ``X``."""
    if len(X) > _MEDIAN_MAX_ROWS:
        X = X[rng.choice(len(X), _MEDIAN_MAX_ROWS, replace=False)]
    d = pdist(X)
    return float(np.median(d)) if d.size else float("nan")


def mmd_rbf(X: np.ndarray, Y: np.ndarray, *, median: float) -> float:
    """Unbiased estimate of the squared MMD with a multi-bandwidth RBF kernel.

    The kernel is the mean of ``exp(-d^2 / (2 s^2))`` over ``s = c * median`` for ``c`` in
    :data:`MMD_BANDWIDTH_SCALES`. The U-statistic excludes the diagonal of the within-set terms,
    so the estimate is 0 in expectation for equal distributions and can be slightly negative.
    """
    if len(X) < 2 or len(Y) < 2 or not median > 0:
        return float("nan")
    gammas = [1.0 / (2.0 * (c * median) ** 2) for c in MMD_BANDWIDTH_SCALES]

    def kernel(d2: np.ndarray) -> np.ndarray:
        return sum(np.exp(-g * d2) for g in gammas) / len(gammas)

    n, m = len(X), len(Y)
    kxx = (_blocked_sum(X, X, kernel) - n) / (n * (n - 1))  # k(x, x) = 1 on the diagonal
    kyy = (_blocked_sum(Y, Y, kernel) - m) / (m * (m - 1))
    kxy = _blocked_sum(X, Y, kernel) / (n * m)
    return kxx + kyy - 2.0 * kxy


def energy_distance(X: np.ndarray, Y: np.ndarray) -> float:
    """Energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` (within-set means exclude self-pairs)."""
    if len(X) < 2 or len(Y) < 2:
        return float("nan")
    n, m = len(X), len(Y)
    dxy = _blocked_sum(X, Y, np.sqrt) / (n * m)
    dxx = _blocked_sum(X, X, np.sqrt) / (n * (n - 1))
    dyy = _blocked_sum(Y, Y, np.sqrt) / (m * (m - 1))
    return 2.0 * dxy - dxx - dyy


def wasserstein_assignment(X: np.ndarray, Y: np.ndarray, rng: np.random.Generator) -> float:
    """1-Wasserstein distance between equal-size subsamples via an exact optimal assignment.

    The larger set is subsampled (seeded) to the size of the smaller one; the value is the mean
    Euclidean cost of the optimal matching. Finite samples make it positive even for equal
    distributions, so compare methods at equal sample sizes.
    """
    n = min(len(X), len(Y))
    if n == 0:
        return float("nan")
    X = X[rng.choice(len(X), n, replace=False)] if len(X) > n else X
    Y = Y[rng.choice(len(Y), n, replace=False)] if len(Y) > n else Y
    cost = cdist(X, Y)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def make_classifier(classifier: Classifier, seed: int):
    """Return an unfitted real-vs-synthetic classifier of the given kind (seeded)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if classifier == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)
    if classifier == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    msg = f"classifier={classifier!r} is not supported; use 'gradient_boosting' or 'logistic'."
    raise ValueError(msg)


def discriminability_auroc(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    classifier: Classifier,
    n_folds: int,
    rng: np.random.Generator,
) -> float:
    """Out-of-fold AUROC of a classifier telling rows of ``Y`` (synthetic) from ``X`` (real).

    Both sets are subsampled to the same size; folds are stratified and shuffled. 0.5 means
    indistinguishable, 1 perfectly separable; values below 0.5 arise only by chance.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    n = min(len(X), len(Y))
    if n < n_folds:
        logger.warning(
            "Too few rows (%d per set) for %d-fold discriminability; returning NaN.", n, n_folds
        )
        return float("nan")
    data, target = balanced_rows(X, Y, rng)
    seed = int(rng.integers(2**31 - 1))
    splits = discriminator_splits(data, target, n_folds=n_folds, seed=seed)
    if splits is None:
        return float("nan")
    clf = make_classifier(classifier, seed)
    # Small fits: OpenMP threads cost more than they save (and stall on a busy machine).
    with single_openmp_thread():
        proba = cross_val_predict(clf, data, target, cv=splits, method="predict_proba")[:, 1]
    return float(roc_auc_score(target, proba))


def balanced_rows(
    X: np.ndarray, Y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stack equal-size random subsamples of ``X`` (target 0, real) and ``Y`` (target 1)."""
    n = min(len(X), len(Y))
    X = X[rng.choice(len(X), n, replace=False)] if len(X) > n else X
    Y = Y[rng.choice(len(Y), n, replace=False)] if len(Y) > n else Y
    return np.vstack([X, Y]), np.r_[np.zeros(n), np.ones(n)]


def discriminator_splits(
    data: np.ndarray, target: np.ndarray, *, n_folds: int, seed: int
) -> list | None:
    """Stratified, shuffled ``n_folds`` (train, test) splits; None (logged) if undefined.

    Identical rows (e.g. copied training rows) share a fold: a copy with the other label in the
    training folds would otherwise push the held-out prediction the wrong way (AUROC < 0.5).
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    _, row_id = np.unique(data, axis=0, return_inverse=True)
    row_id = row_id.ravel()
    duplicated = row_id.max() + 1 < len(data)
    folds = (StratifiedGroupKFold if duplicated else StratifiedKFold)(
        n_folds, shuffle=True, random_state=seed
    )
    return _two_class_splits(folds, data, target, row_id if duplicated else None, n_folds)


def _two_class_splits(folds, data, target, groups, n_folds: int) -> list | None:
    """Return the folds' (train, test) splits, or None (logged) if a training fold has one class.

    Repeated rows share a fold, so few distinct rows (e.g. identical or all-zero rows) can
    leave a training fold with rows of one set only: the classifier is then undefined.
    """
    n_distinct = len(np.unique(groups)) if groups is not None else len(data)
    reason = f"only {n_distinct} distinct rows in both sets"
    if n_distinct >= n_folds:
        splits = list(folds.split(data, target, groups=groups))
        if all(len(np.unique(target[train])) == 2 for train, _ in splits):
            return splits
        reason += ", so a training fold would hold rows of one set only"
    logger.warning(
        "discriminability_auroc is NaN: %s (repeated rows share a fold); %d-fold "
        "cross-validation needs more distinct rows in each set.",
        reason,
        n_folds,
    )
    return None


def nearest_distances(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=1).fit(reference)
    return nn.kneighbors(query, return_distance=True)[0][:, 0]
