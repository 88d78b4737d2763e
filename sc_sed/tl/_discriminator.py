"""``discriminator_features``: which components or per-row summaries give synthetic rows away.

The real-vs-synthetic classifier of :func:`~sc_sed.tl.evaluate` (``discriminability_auroc``) is
fitted on an interpretable feature set: the principal components of the evaluation space plus
per-row summaries of the raw values. Each feature is scored by how much the out-of-fold AUROC
drops when its values are permuted within the held-out fold (permutation importance), and by the
AUROC of the feature alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from sc_sed._threads import single_openmp_thread

from . import _metrics as M
from ._checks import Matrix, _check_groupby, prepare_inputs
from ._evaluate import ALL, _check_settings, _split_real, _str_labels
from ._preprocess import _fit_pca_space, _subsample

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

COLUMNS = [
    "group",
    "feature",
    "kind",
    "importance",
    "importance_sd",
    "univariate_auroc",
    "spread_auroc",
    "mean_real",
    "mean_synth",
    "sd_real",
    "sd_synth",
]


@dataclass
class _Fit:
    classifier: M.Classifier
    n_folds: int
    n_repeats: int


def row_summaries(X: Matrix, *, n_top: int = 50) -> pd.DataFrame:
    """Per-row summaries of raw values: log library size, log detected features, top-n share.

    Parameters
    ----------
    X
        Rows (CSR or dense) of raw values, e.g. counts.
    n_top
        Number of largest values whose share of the row total is reported.

    Returns
    -------
    One row per input row with ``log_library_size`` (``log1p`` of the sum of absolute values),
    ``log_n_detected`` (``log1p`` of the number of non-zero values) and ``top{n_top}_fraction``
    (share of the absolute total held by the ``n_top`` largest absolute values; 0 for an empty
    row).
    """
    if sparse.issparse(X):
        A = abs(sparse.csr_matrix(X))
        A.eliminate_zeros()
        total = np.asarray(A.sum(axis=1)).ravel()
        detected = np.diff(A.indptr)
        bounds = zip(A.indptr[:-1], A.indptr[1:], strict=True)
        top = np.array([_top_sum(A.data[a:b], n_top) for a, b in bounds])
    else:
        A = np.abs(np.asarray(X, dtype=np.float64))
        total, detected = A.sum(axis=1), (A != 0).sum(axis=1)
        k = min(n_top, A.shape[1])
        top = -np.partition(-A, k - 1, axis=1)[:, :k].sum(axis=1)
    share = np.divide(top, total, out=np.zeros(len(total)), where=total > 0)
    return pd.DataFrame(
        {
            "log_library_size": np.log1p(total),
            "log_n_detected": np.log1p(detected),
            f"top{n_top}_fraction": share,
        }
    )


def _top_sum(values: np.ndarray, n_top: int) -> float:
    if len(values) <= n_top:
        return float(values.sum())
    return float(np.partition(values, len(values) - n_top)[-n_top:].sum())


def discriminator_features(
    real: AnnData,
    synth: AnnData,
    *,
    layer: str | None = None,
    groupby: str | None = None,
    n_pcs: int = 30,
    n_hvg: int | None = None,
    normalize: bool = True,
    summaries: bool = True,
    n_top: int = 50,
    max_cells: int | None = 3000,
    classifier: M.Classifier = "gradient_boosting",
    n_folds: int = 5,
    n_repeats: int = 5,
    seed: int = 0,
    align: bool = False,
    reference: AnnData | None = None,
) -> pd.DataFrame:
    """Explain the real-vs-synthetic discriminator: which features give synthetic rows away.

    The rows, the evaluation space and the classifier are those of :func:`~sc_sed.tl.evaluate`'s
    ``discriminability_auroc`` (normalisation, PCA fitted on a held-aside half of the real rows,
    at most ``max_cells`` rows per set, balanced, stratified ``n_folds``-fold cross-validation).
    The classifier sees the ``n_pcs`` principal components (``PC1``, ...) and, with
    ``summaries=True``, three per-row summaries of the raw values (:func:`row_summaries`):
    ``log_library_size``, ``log_n_detected`` and ``top{n_top}_fraction``. A generator whose rows
    are right in shape but wrong in depth is caught by the summaries, not by the normalised PCs.

    The space must be fitted on rows that are not shared between the compared sets and the
    generator's training data. Rows a PCA was fitted on lie farther out along its minor
    components than fresh rows of the same population (with a few hundred rows, about twice
    the SD). So if ``real`` holds the generator's *training* rows, even a generator that only
    copies them is told apart, since half of its copies are of rows the PCA saw. To compare
    with training rows (reconstructions, memorisation checks), pass rows nobody trained on as
    ``reference``.

    Parameters
    ----------
    real
        Held-out real data (never the rows the generator was trained on), unless ``reference``
        is given.
    synth
        Synthetic data with the same features (``var_names``).
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    groupby
        Column of ``obs`` in both objects (e.g. cell type): adds a classifier per group present
        in both, on that group's rows of the same subsample (a group with fewer than ``n_folds``
        rows per set gets NaN with a logged reason).
    n_pcs
        Number of principal components of the evaluation space.
    n_hvg
        Restrict the PCA to this many highly variable features of the real rows.
    normalize
        Normalise to 1e4 per row and ``log1p`` before the PCA (as in ``evaluate``); the summaries
        always use the raw values.
    summaries
        Add the per-row summaries to the PCs; ``False`` explains ``evaluate``'s classifier as is.
    n_top
        Number of largest values in the ``top{n_top}_fraction`` summary.
    max_cells
        Maximum number of rows per set (and for the PCA fit); ``None`` uses all.
    classifier
        ``"gradient_boosting"`` (non-linear) or ``"logistic"`` (standardised logistic regression).
    n_folds
        Number of cross-validation folds.
    n_repeats
        Permutations per feature and fold; the importance is their mean.
    seed
        Seed of the subsamples, the folds, the classifier and the permutations.
    align
        Use the shared features (with a warning) when the feature sets differ.
    reference
        Real rows to fit the evaluation space on (at most ``max_cells`` of them), with the same
        features and ``layer``; then every row of ``real`` is compared. ``None`` fits it on a
        held-aside half of ``real``. Give rows that are in neither set and were not trained on
        when ``real`` holds a generator's training rows.

    Returns
    -------
    One row per (group, feature), ``"all"`` first, each group sorted by ``importance``:

    * ``kind``: ``"pc"`` or ``"summary"``.
    * ``importance`` (higher = gives the rows away more; about 0 = unused): out-of-fold AUROC of
      the classifier minus its AUROC with the feature permuted within each held-out fold, mean
      over ``n_repeats`` permutations; ``importance_sd`` their standard deviation. Correlated
      features share credit (permuting one leaves the other), so read a small importance of a
      feature with a large ``univariate_auroc`` as "redundant", not "harmless".
    * ``univariate_auroc`` (ideal 0.5): AUROC of the feature's value alone for telling synthetic
      from real rows; above 0.5 when synthetic rows have higher values, below when lower.
    * ``spread_auroc`` (ideal 0.5): the same for the distance of the value from the real rows'
      median; above 0.5 when synthetic rows lie farther out (too broad, heavier tails), below
      when they crowd the centre. A spread difference leaves ``univariate_auroc`` at 0.5 and is
      invisible to a linear classifier, not to trees.
    * ``mean_real``, ``mean_synth``, ``sd_real``, ``sd_synth``: the feature's mean and standard
      deviation in the rows the classifier saw.

    ``df.attrs["sc_sed"]["auroc"]`` maps each group to the out-of-fold AUROC with all features
    (``"all_features"``), with the PCs only (``"pcs_only"``, ``evaluate``'s feature set) and with
    the summaries only (``"summaries_only"``), and ``attrs["sc_sed"]["n_rows"]`` to the rows per
    set. :func:`sc_sed.pl.discriminator_features` draws the table.

    Examples
    --------
    >>> df = sc_sed.tl.discriminator_features(adata_test, synth, layer="counts")
    >>> df.head()
    >>> df.attrs["sc_sed"]["auroc"]["all"]
    """
    _check_settings(max_cells, n_folds, 1, classifier)
    for name, value in (("n_repeats", n_repeats), ("n_top", n_top)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            msg = f"`{name}` must be a positive integer, got {value!r}."
            raise ValueError(msg)
    adatas = {"real": real, "synth": synth}
    labels = {}
    if groupby is not None:
        labels = {k: _str_labels(v) for k, v in _check_groupby(adatas, groupby).items()}
    if reference is not None:
        adatas["reference"] = reference
    X = prepare_inputs(adatas, layer=layer, normalize=normalize, align=align).X
    rng = np.random.default_rng(seed)
    if reference is None:
        fit_rows, eval_rows = _split_real(X["real"].shape[0], max_cells, rng)
        X_fit = X["real"][fit_rows]
    else:
        X_fit = X["reference"][_subsample(X["reference"].shape[0], max_cells, rng)]
        eval_rows = np.arange(X["real"].shape[0])
    space = _fit_pca_space(X_fit, normalize=normalize, n_pcs=n_pcs, n_hvg=n_hvg, seed=seed)
    rows = {
        "real": eval_rows[_subsample(len(eval_rows), max_cells, rng)],
        "synth": _subsample(X["synth"].shape[0], max_cells, rng),
    }
    feats = {
        k: _features(X[k][r], space, summaries=summaries, n_top=n_top) for k, r in rows.items()
    }
    fit = _Fit(classifier, n_folds, n_repeats)
    tables, aurocs, n_rows = [], {}, {}
    for group, masks in _group_masks(rows, labels):
        F = {k: feats[k][masks[k]] for k in feats}
        table, aurocs[group] = _explain(F["real"], F["synth"], fit, rng, group=group)
        tables.append(table.assign(group=group))
        n_rows[group] = {k: int(masks[k].sum()) for k in masks}
    df = pd.concat(tables, ignore_index=True)[COLUMNS]
    df.attrs["sc_sed"] = {
        "auroc": aurocs,
        "n_rows": n_rows,
        "n_pcs": space.n_pcs,
        "explained_variance_ratio": space.explained_variance_ratio_.tolist(),
        "classifier": classifier,
        "n_folds": n_folds,
        "n_repeats": n_repeats,
        "normalize": normalize,
        "groupby": groupby,
        "layer": layer,
        "seed": seed,
        "reference": reference is not None,
    }
    return df


def _features(X: Matrix, space, *, summaries: bool, n_top: int) -> pd.DataFrame:
    """PC coordinates (``PC1``...) and, optionally, the per-row summaries of raw rows ``X``."""
    pcs = space.transform(X)
    out = pd.DataFrame(pcs, columns=[f"PC{i + 1}" for i in range(pcs.shape[1])])
    if summaries:
        out = pd.concat([out, row_summaries(X, n_top=n_top)], axis=1)
    return out


def _group_masks(rows: dict[str, np.ndarray], labels: dict[str, np.ndarray]):
    """Yield ``("all", masks)`` then ``(group, masks)`` for each group present in both sets."""
    yield ALL, {k: np.ones(len(r), dtype=bool) for k, r in rows.items()}
    if not labels:
        return
    sub = {k: labels[k][r] for k, r in rows.items()}
    present = [{lab for lab in sub[k] if lab is not None} for k in ("real", "synth")]
    missing = present[0] ^ present[1]
    if missing:
        logger.warning(
            "Groups in only one of the subsampled sets get no per-group rows: %s", sorted(missing)
        )
    for group in sorted(present[0] & present[1]):
        yield group, {k: sub[k] == group for k in sub}


def _explain(
    real: pd.DataFrame, synth: pd.DataFrame, fit: _Fit, rng: np.random.Generator, *, group: str
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Return the per-feature table and the three AUROCs of one (real, synthetic) row pair."""
    from sklearn.metrics import roc_auc_score

    names = list(real.columns)
    kind = ["pc" if n.startswith("PC") and n[2:].isdigit() else "summary" for n in names]
    table = pd.DataFrame({"feature": names, "kind": kind})
    nan = dict.fromkeys(("all_features", "pcs_only", "summaries_only"), float("nan"))
    n = min(len(real), len(synth))
    if n < fit.n_folds:
        logger.warning(
            "discriminator_features is NaN for group %r: %d rows per set, %d-fold "
            "cross-validation needs at least %d.",
            group,
            n,
            fit.n_folds,
            fit.n_folds,
        )
        return _with_nan(table), nan
    data, target = M.balanced_rows(real.to_numpy(), synth.to_numpy(), rng)
    seed = int(rng.integers(2**31 - 1))
    splits = M.discriminator_splits(data, target, n_folds=fit.n_folds, seed=seed)
    if splits is None:
        return _with_nan(table), nan
    drops, aurocs = _permutation_drops(data, target, splits, fit, seed, rng)
    is_pc = np.array(kind) == "pc"
    for key, cols in (("pcs_only", is_pc), ("summaries_only", ~is_pc)):
        aurocs[key] = (
            _oof_auroc(data[:, cols], target, splits, fit, seed) if cols.any() else nan[key]
        )
    real_x, synth_x = data[target == 0], data[target == 1]
    table = table.assign(
        importance=drops.mean(axis=1),
        importance_sd=drops.std(axis=1),
        univariate_auroc=[_univariate(roc_auc_score, target, col) for col in data.T],
        spread_auroc=[
            _univariate(roc_auc_score, target, np.abs(col - np.median(col[target == 0])))
            for col in data.T
        ],
        mean_real=real_x.mean(axis=0),
        mean_synth=synth_x.mean(axis=0),
        sd_real=real_x.std(axis=0),
        sd_synth=synth_x.std(axis=0),
    )
    return table.sort_values("importance", ascending=False, kind="stable"), aurocs


def _with_nan(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(**{c: np.nan for c in COLUMNS if c not in table.columns and c != "group"})


def _univariate(score, target: np.ndarray, values: np.ndarray) -> float:
    return float(score(target, values)) if np.ptp(values) > 0 else 0.5


def _fit_folds(data, target, splits, fit: _Fit, seed: int) -> list:
    # Small fits: OpenMP threads cost more than they save (and stall on a busy machine).
    with single_openmp_thread():
        return [
            M.make_classifier(fit.classifier, seed).fit(data[tr], target[tr]) for tr, _ in splits
        ]


def _oof_proba(models, data: np.ndarray, splits) -> np.ndarray:
    proba = np.empty(len(data))
    for model, (_, test) in zip(models, splits, strict=True):
        proba[test] = model.predict_proba(data[test])[:, 1]
    return proba


def _oof_auroc(data, target, splits, fit: _Fit, seed: int) -> float:
    from sklearn.metrics import roc_auc_score

    models = _fit_folds(data, target, splits, fit, seed)
    return float(roc_auc_score(target, _oof_proba(models, data, splits)))


def _permutation_drops(data, target, splits, fit: _Fit, seed: int, rng: np.random.Generator):
    """``(n_features, n_repeats)`` AUROC drops when one column is permuted within each test fold."""
    from sklearn.metrics import roc_auc_score

    models = _fit_folds(data, target, splits, fit, seed)
    base = float(roc_auc_score(target, _oof_proba(models, data, splits)))
    drops = np.empty((data.shape[1], fit.n_repeats))
    with single_openmp_thread():
        for j in range(data.shape[1]):
            for r in range(fit.n_repeats):
                permuted = data.copy()
                for _, test in splits:
                    permuted[test, j] = data[rng.permutation(test), j]
                proba = _oof_proba(models, permuted, splits)
                drops[j, r] = base - roc_auc_score(target, proba)
    return drops, {"all_features": base}
