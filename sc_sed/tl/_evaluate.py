"""``evaluate``: compare real (held-out) and synthetic rows with a tidy table of metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _metrics as M
from ._checks import Matrix, _check_groupby, prepare_inputs
from ._compare import _compare, _fit_knn, _make_subset, _overall_extras, _Settings
from ._interactions import interaction_records
from ._markers import marker_records
from ._preprocess import _fit_pca_space, _PCASpace
from ._table import (
    INTERACTION_METRICS,
    MARKER_METRICS,
    OVERALL_ONLY,
    PCA_METRICS,
    _to_frame,
    _wanted_metrics,
)

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

ALL = "all"


def _groups(real_labels: np.ndarray, synth_labels: np.ndarray) -> list[str]:
    """Return the groups present in both objects (sorted); warn about the others."""
    if ALL in real_labels:
        logger.warning(
            "A group is named %r, like the rows for the whole data; rename it to tell them apart.",
            ALL,
        )
    real_set = {lab for lab in real_labels if lab is not None}
    synth_set = {lab for lab in synth_labels if lab is not None}
    if synth_set - real_set:
        logger.warning(
            "Synthetic groups absent from real data (no per-group rows): %s",
            sorted(synth_set - real_set),
        )
    if real_set - synth_set:
        logger.warning(
            "Real groups absent from synthetic data (no per-group rows): %s",
            sorted(real_set - synth_set),
        )
    return sorted(real_set & synth_set)


def _check_settings(max_cells: int | None, n_folds: int, n_neighbors: int, classifier: str) -> None:
    if classifier not in ("gradient_boosting", "logistic"):
        msg = f"classifier={classifier!r} is not supported; use 'gradient_boosting' or 'logistic'."
        raise ValueError(msg)
    if max_cells is not None and max_cells < 2:
        msg = f"`max_cells` must be at least 2 (or None for all rows), got {max_cells}."
        raise ValueError(msg)
    if n_folds < 2:
        msg = f"`n_folds` must be at least 2, got {n_folds}."
        raise ValueError(msg)
    if n_neighbors < 1:
        msg = f"`n_neighbors` must be at least 1, got {n_neighbors}."
        raise ValueError(msg)


def _warn_overlap(real: AnnData, train: AnnData | None) -> None:
    if train is None:
        return
    n_shared = int(pd.Index(real.obs_names).isin(train.obs_names).sum())
    if n_shared:
        logger.warning(
            "`real` shares %d obs_names with `train`; evaluate on held-out real rows, not training rows.",
            n_shared,
        )


def evaluate(
    real: AnnData,
    synth: AnnData,
    *,
    layer: str | None = None,
    groupby: str | None = None,
    train: AnnData | None = None,
    n_pcs: int = 30,
    n_hvg: int | None = None,
    normalize: bool = True,
    max_cells: int | None = 3000,
    seed: int = 0,
    align: bool = False,
    metrics: Sequence[str] | None = None,
    classifier: M.Classifier = "gradient_boosting",
    n_folds: int = 5,
    n_neighbors: int = 15,
    markers: bool = True,
    n_markers: int = 50,
    interactions: bool = False,
) -> pd.DataFrame:
    """Compare synthetic rows with held-out real rows; one tidy row per metric (and group).

    The evaluation space: each row is scaled to a total of 1e4 and ``log1p``-transformed
    (``normalize=False`` skips this for data that are already normalised), optionally restricted to
    ``n_hvg`` highly variable features chosen on real rows, and projected on ``n_pcs`` principal
    components fitted on real rows only. Metrics (``better`` says which direction is best):

    * ``scc`` (higher, ideal 1): Spearman correlation of per-feature means in the normalised space,
      over all features and all rows.
    * ``mmd`` (lower, 0): unbiased estimate of the squared maximum mean discrepancy in PCA space
      with an RBF kernel averaged over bandwidths 0.5, 1 and 2 times the median pairwise distance
      among the real rows compared; can be slightly negative for equal distributions.
    * ``energy_distance`` (lower, 0): ``2E|X-Y| - E|X-X'| - E|Y-Y'|`` in PCA space.
    * ``wasserstein`` (lower, 0): 1-Wasserstein distance in PCA space by exact optimal assignment
      between equal-size subsamples; positive even for equal distributions at finite size, so
      compare methods at equal sample sizes.
    * ``discriminability_auroc`` (lower, ideal 0.5): out-of-fold AUROC of a classifier on the PCs
      separating real from synthetic (balanced, stratified ``n_folds``-fold cross-validation).
      ``better="lower"`` because values below 0.5 only arise by chance.
      :func:`~sc_sed.tl.discriminator_features` explains it: which components, or which
      per-row summaries (library size, detected features; normalisation hides depth from the
      PCs), give the rows away.
    * ``label_accuracy`` (higher, 1; needs ``groupby``): accuracy on synthetic rows of a kNN
      classifier fitted on real PCs and real labels.
    * ``zero_fraction_real`` (``better="none"``, reference), ``zero_fraction_synth`` (closest to the
      real value is best), ``zero_fraction_diff`` (synthetic minus real, ideal 0): fractions of
      exact zeros in the matrices.
    * ``detection_rate_pearson`` (higher, 1) and ``detection_rate_mae`` (lower, 0): agreement of the
      per-feature fraction of rows with a non-zero value.
    * ``nnz_per_row_wasserstein`` (lower, 0): 1-D Wasserstein distance between the per-row numbers
      of non-zeros.
    * ``n_spurious_features`` (lower, 0; overall only): features non-zero in some synthetic row
      but zero in every row of ``real`` and of ``train``.
    * ``memorisation_ratio`` (closest to 1 is best; needs ``train``; overall only): median distance
      in PCA space from synthetic rows to their nearest training row divided by the same for real
      rows. Well below 1 means the generator copies training rows.
    * ``logfc_pearson`` and ``marker_precision`` (higher, 1; need ``groupby``; turned off by
      ``markers=False``): per group, the Pearson correlation across genes of the group-vs-rest
      log-fold-changes (difference of mean ``log1p`` values), real vs synthetic, and the fraction
      of the real top-``n_markers`` markers (scanpy's Wilcoxon ``rank_genes_groups``) that are
      also synthetic top markers; ``"all"`` averages the groups. ``logfc_pearson_split_half`` and
      ``marker_precision_split_half`` (``better="none"``, reference) give the same numbers between
      two stratified halves of the real rows, and the synthetic rows are drawn to a half's size
      per group, so read ``0.82`` against the halves' ``0.88``. See
      :func:`~sc_sed.tl.marker_fidelity`; they use every row (a few seconds for a few thousand
      rows and genes, so they are on by default).
    * Recommender measures (``interactions=True``; users x items tables, overall only):
      ``item_popularity_spearman``, ``item_popularity_gini_real``/``_synth``/``_diff``,
      ``user_activity_wasserstein``, ``log_value_ks``, ``top_pairs_overlap``, train-on-synthetic
      ``tstr_recall``/``tstr_ndcg`` (at k = 20) and their ``*_ratio`` to a recommender trained on
      real users, each with a ``*_split_half`` reference row from two halves of the real users.
      See :func:`~sc_sed.tl.interaction_metrics`; they use the raw values (not ``normalize``).

    Subsampling: the PCA is fitted on a seeded random subset of the real rows (at most
    ``max_cells`` rows and at most half of them) that is then left out of the PCA-space metrics, so
    that real and synthetic rows are both projected out of sample (in-sample projections have
    inflated variance along the trailing components, which a classifier would pick up). The
    PCA-space metrics (quadratic in the number of rows) use at most ``max_cells`` of the remaining
    rows per set (per group for group rows), drawn without replacement with ``seed``. For the same
    reason, passing one object as both ``real`` and ``synth`` does not give ideal PCA-space values;
    use two disjoint halves of a data set as a sanity check. ``scc``, the sparsity metrics and the
    memorisation reference (every ``train`` row) use all rows; they are linear and sparse.
    Sparse input is never densified beyond the subsampled rows.

    Parameters
    ----------
    real
        Held-out real data (never the rows the generator was trained on).
    synth
        Synthetic data with the same features (``var_names``).
    layer
        Layer holding the values in every object; ``None`` uses ``.X``.
    groupby
        Column of ``obs`` in ``real`` and ``synth`` (e.g. cell type). Adds ``label_accuracy`` and a
        copy of the per-group metrics for every group present in both objects.
    train
        The generator's training data; enables ``memorisation_ratio`` and widens the reference of
        ``n_spurious_features``.
    n_pcs
        Number of principal components of the evaluation space.
    n_hvg
        Restrict the PCA to this many highly variable features of the real rows (scanpy's
        ``"seurat"`` flavour; highest variance when ``normalize=False``); ``None`` uses all.
    normalize
        Normalise counts to 1e4 per row and ``log1p``; pass ``False`` if the data are already
        normalised (then negative values are allowed).
    max_cells
        Maximum number of rows per set for the PCA fit and the PCA-space metrics; ``None`` uses all
        (quadratic cost).
    seed
        Seed of every subsample, of the classifier and of the cross-validation folds.
    align
        If the feature sets differ, evaluate on the shared features (with a warning) instead of
        raising an error.
    metrics
        Names of the metrics to compute (see above); ``None`` computes all that the inputs allow.
    classifier
        Discriminability classifier: ``"gradient_boosting"`` (scikit-learn's histogram gradient
        boosting, non-linear) or ``"logistic"`` (standardised logistic regression, faster).
    n_folds
        Number of cross-validation folds for ``discriminability_auroc``.
    n_neighbors
        Neighbours of the kNN classifier for ``label_accuracy``.
    markers
        Compute the marker metrics (with ``groupby``); ``False`` skips them.
    n_markers
        Number of top markers per group compared by ``marker_precision``.
    interactions
        Add the recommender measures of :func:`~sc_sed.tl.interaction_metrics` (with ``train``,
        ``layer``, ``seed`` and ``align``) for users x items tables.

    Returns
    -------
    Tidy table with columns ``metric``, ``group`` (``"all"`` for the whole data, else the group
    label as a string), ``value``, ``better`` (``"higher"``, ``"lower"``, ``"closer"`` to ``ideal``,
    or ``"none"`` for a reference value) and ``ideal``. ``df.attrs["sc_sed"]`` records the settings.

    Examples
    --------
    >>> df = sc_sed.tl.evaluate(adata_test, synth, groupby="cell_type", train=adata_train)
    >>> df.pivot(index="metric", columns="group", values="value")
    """
    wanted = _wanted_metrics(metrics, has_groups=groupby is not None, has_train=train is not None)
    wanted = wanted if markers else wanted - MARKER_METRICS
    wanted = _check_interactions(wanted, metrics, interactions)
    _check_settings(max_cells, n_folds, n_neighbors, classifier)
    labels = {}
    if groupby is not None:
        labels = {
            k: _str_labels(v)
            for k, v in _check_groupby({"real": real, "synth": synth}, groupby).items()
        }
    adatas = {"real": real, "synth": synth} | ({"train": train} if train is not None else {})
    X = prepare_inputs(adatas, layer=layer, normalize=normalize, align=align).X
    _warn_overlap(real, train)
    cfg = _Settings(wanted, normalize, max_cells, classifier, n_folds, n_neighbors)
    rng = np.random.default_rng(seed)
    records, space = _evaluate_all(X, labels, cfg, rng, n_pcs=n_pcs, n_hvg=n_hvg, seed=seed)
    if MARKER_METRICS & wanted:
        kw = {"layer": layer, "normalize": normalize, "seed": seed, "align": align}
        records += marker_records(real, synth, groupby, wanted=wanted, n_top=n_markers, **kw)
    if INTERACTION_METRICS & wanted:
        kw = {"train": train, "layer": layer, "seed": seed, "align": align}
        records += interaction_records(real, synth, wanted=wanted, **kw)
    df = _to_frame(records)
    df.attrs["sc_sed"] = _provenance(cfg, space, X, seed=seed, groupby=groupby, layer=layer)
    df.attrs["sc_sed"]["n_markers"] = n_markers if MARKER_METRICS & wanted else None
    return df


def _check_interactions(wanted: frozenset[str], metrics, interactions: bool) -> frozenset[str]:
    """Keep the recommender measures only with ``interactions=True``; naming one needs it."""
    if interactions:
        return wanted
    if metrics is not None and INTERACTION_METRICS & wanted:
        named = sorted(INTERACTION_METRICS & wanted)
        msg = f"Metrics {named} are recommender measures; pass `interactions=True` to compute them."
        raise ValueError(msg)
    return wanted - INTERACTION_METRICS


def _split_real(n_real: int, max_cells: int | None, rng: np.random.Generator):
    """Disjoint real rows: those the PCA is fitted on, and those the PCA-space metrics use."""
    if n_real < 4:
        msg = f"`real` has {n_real} rows; the PCA-space metrics need at least 4 (2 to fit, 2 to compare)."
        raise ValueError(msg)
    n_fit = min(max_cells or n_real, n_real // 2)
    perm = rng.permutation(n_real)
    return np.sort(perm[:n_fit]), np.sort(perm[n_fit:])


def _evaluate_all(X, labels, cfg: _Settings, rng, *, n_pcs: int, n_hvg: int | None, seed: int):
    """Overall then per-group metrics, as ``(metric, group, value)`` records."""
    n_real, n_synth = X["real"].shape[0], X["synth"].shape[0]
    all_real, all_synth = np.arange(n_real), np.arange(n_synth)
    space, eval_rows = None, all_real
    if (PCA_METRICS | {"label_accuracy", "memorisation_ratio"}) & cfg.wanted:
        fit_rows, eval_rows = _split_real(n_real, cfg.max_cells, rng)
        space = _fit_pca_space(
            X["real"][fit_rows], normalize=cfg.normalize, n_pcs=n_pcs, n_hvg=n_hvg, seed=seed
        )
    kw = {"space": space, "max_cells": cfg.max_cells, "rng": rng}
    real = _make_subset(X["real"], labels.get("real"), all_real, eval_rows, **kw)
    synth = _make_subset(X["synth"], labels.get("synth"), all_synth, all_synth, **kw)
    knn = _fit_knn(real, cfg.n_neighbors) if "label_accuracy" in cfg.wanted else None
    overall = _compare(real, synth, cfg, rng, knn) | _overall_extras(X, space, real, synth, cfg)
    records = [(m, ALL, v) for m, v in overall.items()]
    if not labels:
        return records, space
    return records + _group_records(X, labels, cfg, rng, knn, eval_rows, kw), space


def _group_records(X, labels, cfg: _Settings, rng, knn, eval_rows: np.ndarray, kw: dict) -> list:
    """Per-group metrics (all but the overall-only ones) for the groups in both objects."""
    group_cfg = replace(cfg, wanted=cfg.wanted - OVERALL_ONLY)
    records = []
    for group in _groups(labels["real"], labels["synth"]):
        rows_r = np.flatnonzero(labels["real"] == group)
        rows_s = np.flatnonzero(labels["synth"] == group)
        pca_rows_r = np.intersect1d(rows_r, eval_rows)
        if len(pca_rows_r) == 0:
            logger.warning(
                "Group %r has no real rows outside the PCA fit; its PCA metrics are NaN.", group
            )
        real_g = _make_subset(X["real"], labels["real"], rows_r, pca_rows_r, **kw)
        synth_g = _make_subset(X["synth"], labels["synth"], rows_s, rows_s, **kw)
        values = _compare(real_g, synth_g, group_cfg, rng, knn)
        records += [(m, group, v) for m, v in values.items()]
    return records


def _str_labels(labels: np.ndarray) -> np.ndarray:
    """Labels as strings (as the table and the kNN see them), missing labels kept as None."""
    return np.array([None if lab is None else str(lab) for lab in labels], dtype=object)


def _n_pca_features(space: _PCASpace | None, n_features: int) -> int | None:
    if space is None:
        return None
    return len(space.features) if space.features is not None else n_features


def _provenance(
    cfg: _Settings, space: _PCASpace | None, X: dict[str, Matrix], *, seed: int, groupby, layer
) -> dict:
    return {
        "normalize": cfg.normalize,
        "n_pcs": space.n_pcs if space is not None else None,
        "n_features_pca": _n_pca_features(space, X["real"].shape[1]),
        "max_cells": cfg.max_cells,
        "seed": seed,
        "classifier": cfg.classifier,
        "n_folds": cfg.n_folds,
        "n_neighbors": cfg.n_neighbors,
        "groupby": groupby,
        "layer": layer,
        "n_rows": {name: int(mat.shape[0]) for name, mat in X.items()},
        "mmd_estimator": "unbiased squared MMD, RBF bandwidths (0.5, 1, 2) x median distance",
    }
