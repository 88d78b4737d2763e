"""``marker_fidelity``: whether synthetic cells keep each group's markers and log-fold-changes.

Both sets are normalised as in :func:`~sc_sed.tl.evaluate` (``normalize_total`` to 1e4 and
``log1p``, on copies). The real rows are split into two halves stratified by group; each half is
compared with the other (the reference) and with synthetic rows drawn per group to the half's
size (the value, averaged over both halves), so both numbers have the same sample sizes. For one
pair of sets and one group, on the genes detected (non-zero at least once) in either set:

* ``logfc_pearson``: Pearson correlation across genes of the group-vs-rest log-fold-change of one
  set with that of the other. The log-fold-change of a gene is the mean of its ``log1p`` values in
  the group minus their mean in every other row ("rest"), natural log. It is bounded, unlike
  ``log2`` of a ratio of means, where a gene absent from one side dominates the correlation.
* ``marker_precision``: precision at ``k``, ``|top_k(one) & top_k(other)| / k``, of the ``k``
  top-ranked up-regulated markers from scanpy's :func:`scanpy.tl.rank_genes_groups` (group vs
  rest, ranked by its score; Wilcoxon by default). Ranking is left to scanpy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import sparse

from sc_sed._threads import torch_threads_kept
from sc_sed._validation import check_count

from ._checks import Matrix, prepare_inputs
from ._preprocess import _normalize

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

ALL = "all"
MIN_CELLS = 2
#: The two marker metrics; ``evaluate`` adds each one's reference as ``<name>_split_half`` rows.
METRIC_NAMES = ("logfc_pearson", "marker_precision")
SPLIT_HALF_SUFFIX = "_split_half"
Method = Literal["wilcoxon", "t-test", "t-test_overestim_var"]


@dataclass
class NormalizedPair:
    """Real and synthetic rows normalised on shared features, with string labels and real groups."""

    X: dict[str, Matrix]
    labels: dict[str, np.ndarray]
    groups: list[str]
    var_names: pd.Index


@dataclass
class _Side:
    """One set of a pair: normalised rows (genes of the pair only) and string labels."""

    X: Matrix
    labels: np.ndarray
    name: str


def marker_fidelity(
    real: AnnData,
    synth: AnnData,
    groupby: str,
    *,
    n_top: int = 50,
    layer: str | None = None,
    method: Method = "wilcoxon",
    normalize: bool = True,
    seed: int = 0,
    align: bool = False,
) -> pd.DataFrame:
    """Per-group agreement of log-fold-changes and top markers, with a split-half reference.

    For each group of ``real.obs[groupby]`` (group vs all other rows, in each set separately):

    * ``logfc_pearson`` (higher is better, ideal 1): Pearson correlation across genes of the
      real and the synthetic log-fold-changes. The log-fold-change of a gene is its mean
      ``log1p`` value (after ``normalize_total`` to 1e4) in the group minus that in the rest
      (natural log); genes detected in either set are used.
    * ``marker_precision`` (higher, ideal 1): precision at ``k = min(n_top, n_genes)``, the
      fraction of the real top-``k`` markers also among the synthetic top-``k``. Markers are
      ranked by :func:`scanpy.tl.rank_genes_groups` (``method``, reference ``"rest"``, by score,
      so up-regulated genes only).

    The real rows are split into two random halves, stratified by group (seeded). ``split_half``
    is each number between the two halves: how far two samples of the real data agree. ``value``
    compares each half with synthetic rows drawn, per group and without replacement, as many as
    the half has (all of them where the synthetic group is smaller), and averages the two halves.
    Both numbers thus rest on the same numbers of cells and a generator as good as the real data
    scores like the reference: read ``0.82`` against the halves' ``0.88``. Synthetic groups absent
    from ``real`` are left out. Group ``"all"`` averages the groups where both numbers are
    defined.

    A group with fewer than 2 rows in it or outside it in a half or its synthetic match (also a
    group absent from ``synth``) gets NaN and a logged warning naming the reason; groups need at
    least 4 real rows. Cost: four ``rank_genes_groups`` on half-size sets; with Wilcoxon a few
    seconds for a few thousand rows and genes. The inputs are never modified.

    Parameters
    ----------
    real
        Real (held-out) data with integer counts (or normalised values, see ``normalize``).
    synth
        Synthetic data with the same features.
    groupby
        Column of ``obs`` in both objects with the groups (e.g. cell type).
    n_top
        Number ``k`` of top markers per group compared.
    layer
        Layer holding the values in both objects; ``None`` uses ``.X``.
    method
        Test used by :func:`scanpy.tl.rank_genes_groups` to rank the markers.
    normalize
        Normalise to 1e4 per row and ``log1p``; ``False`` for data that are already
        log-normalised.
    seed
        Seed of the split into halves and of the synthetic rows drawn for each.
    align
        Use the shared features (with a warning) if the feature sets differ.

    Returns
    -------
    Table with columns ``metric``, ``group`` (``"all"`` first, then each real group as a string),
    ``value``, ``split_half``, ``better`` and ``ideal``; ``attrs["sc_sed"]`` records the settings.

    Examples
    --------
    >>> df = sc_sed.tl.marker_fidelity(adata_test, synth, "cell_type")
    >>> df.pivot(index="group", columns="metric", values=["value", "split_half"])
    """
    _check_marker_args(n_top, method, name="n_top")
    pair = normalized_pair(real, synth, groupby, layer=layer, normalize=normalize, align=align)
    Xn, labels, groups = pair.X, pair.labels, pair.groups
    rng = np.random.default_rng(seed)
    halves = _split_halves(labels["real"], rng)
    matched = [_matched_rows(labels["synth"], labels["real"][h], rng) for h in halves]
    sides = [
        _Side(Xn["real"][h], labels["real"][h], f"real half {i + 1}") for i, h in enumerate(halves)
    ]
    sides += [
        _Side(Xn["synth"][m], labels["synth"][m], f"synth (as half {i + 1})")
        for i, m in enumerate(matched)
    ]
    de, detected, k = _side_results(sides, groups, n_top, method)
    ref = _pair_metrics(de[0], de[1], detected[0] | detected[1], groups, k)
    vs_synth = [
        _pair_metrics(de[i], de[i + 2], detected[i] | detected[i + 2], groups, k) for i in (0, 1)
    ]
    df = _frame(_mean_of_halves(vs_synth, groups), ref, groups)
    df.attrs["sc_sed"] = {"groupby": groupby, "n_top": n_top, "method": method, "seed": seed}
    df.attrs["sc_sed"] |= {"normalize": normalize, "layer": layer, "logfc": "mean log1p difference"}
    return df


def normalized_pair(
    real: AnnData, synth: AnnData, groupby: str, *, layer: str | None, normalize: bool, align: bool
) -> NormalizedPair:
    """Validate both sets and return normalised copies (1e4 per row + ``log1p`` when ``normalize``)."""
    inputs = prepare_inputs(
        {"real": real, "synth": synth},
        layer=layer,
        normalize=normalize,
        align=align,
        groupby=groupby,
    )
    labels = {k: _str_labels(v) for k, v in inputs.labels.items()}
    Xn = {k: _normalize(X, normalize=normalize) for k, X in inputs.X.items()}
    return NormalizedPair(Xn, labels, _marker_groups(labels), inputs.var_names)


def marker_records(
    real: AnnData, synth: AnnData, groupby: str, *, wanted: frozenset[str], n_top: int, **kwargs
) -> list[tuple[str, str, float]]:
    """``(metric, group, value)`` rows for ``evaluate``: each metric and its split-half reference.

    ``kwargs`` go to :func:`marker_fidelity`; only the metrics named in ``wanted`` are kept.
    """
    _check_marker_args(n_top, "wilcoxon", name="n_markers")
    df = marker_fidelity(real, synth, groupby, n_top=n_top, **kwargs)
    records = []
    for rec in df.itertuples(index=False):
        records.append((rec.metric, rec.group, rec.value))
        records.append((rec.metric + SPLIT_HALF_SUFFIX, rec.group, rec.split_half))
    return [r for r in records if r[0] in wanted]


def _check_marker_args(n_top: int, method: str, *, name: str) -> None:
    check_count(n_top, name, "markers compared per group")
    if method not in ("wilcoxon", "t-test", "t-test_overestim_var"):
        msg = f"method={method!r} is not supported; use 'wilcoxon', 't-test' or 't-test_overestim_var'."
        raise ValueError(msg)


def _str_labels(labels: np.ndarray) -> np.ndarray:
    return np.array([None if lab is None else str(lab) for lab in labels], dtype=object)


def _marker_groups(labels: Mapping[str, np.ndarray]) -> list[str]:
    """Return the real groups (sorted); synthetic-only groups are reported and left out."""
    real_set = {lab for lab in labels["real"] if lab is not None}
    extra = {lab for lab in labels["synth"] if lab is not None} - real_set
    if extra:
        logger.warning("Synthetic groups absent from real data (no marker rows): %s", sorted(extra))
    if not real_set:
        msg = "No real row has a group label; marker fidelity needs labelled real rows."
        raise ValueError(msg)
    return sorted(real_set)


def _keys(labels: np.ndarray) -> np.ndarray:
    return np.array(["\0none" if lab is None else lab for lab in labels], dtype=object)


def _split_halves(labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Two disjoint halves of the rows, stratified by label (missing labels are one stratum)."""
    keys = _keys(labels)
    half_a, half_b = [], []
    for key in sorted(set(keys)):
        rows = rng.permutation(np.flatnonzero(keys == key))
        half_a.append(rows[: len(rows) // 2])
        half_b.append(rows[len(rows) // 2 :])
    return [np.sort(np.concatenate(half_a)), np.sort(np.concatenate(half_b))]


def _matched_rows(labels: np.ndarray, like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows of ``labels`` drawn per label as many times as in ``like`` (all of them if fewer)."""
    keys, like_keys = _keys(labels), _keys(like)
    rows = []
    for key in sorted(set(keys)):
        pool = np.flatnonzero(keys == key)
        n = min(len(pool), int(np.sum(like_keys == key)))
        rows.append(rng.choice(pool, size=n, replace=False))
    return np.sort(np.concatenate(rows)).astype(int)


def _detected(X: Matrix) -> np.ndarray:
    nonzero = X.getnnz(axis=0) if sparse.issparse(X) else np.count_nonzero(X, axis=0)
    return np.asarray(nonzero).ravel() > 0


def _side_results(sides: list[_Side], groups: list[str], n_top: int, method: str):
    """Per set: log-fold-changes and top markers on the genes detected in any set; detection masks."""
    detected = [_detected(s.X) for s in sides]
    genes = np.flatnonzero(np.logical_or.reduce(detected))
    k = min(n_top, len(genes))
    de = [_side_de(_Side(s.X[:, genes], s.labels, s.name), groups, k, method) for s in sides]
    return de, [d[genes] for d in detected], k


def _pair_metrics(de_a: dict, de_b: dict, genes: np.ndarray, groups: list[str], k: int) -> dict:
    """``{group: (logfc_pearson, marker_precision)}``; the correlation uses the ``genes`` mask."""
    out = {}
    for group in groups:
        if group not in de_a or group not in de_b:
            out[group] = (np.nan, np.nan)
            continue
        (lfc_a, top_a), (lfc_b, top_b) = de_a[group], de_b[group]
        out[group] = (_pearson(lfc_a[genes], lfc_b[genes]), len(np.intersect1d(top_a, top_b)) / k)
    return out


def _mean_of_halves(per_half: list[dict], groups: list[str]) -> dict:
    """Average the two halves' comparisons with the synthetic set (one half alone if only it is defined)."""
    out = {}
    for group in groups:
        values = np.array([half[group] for half in per_half])  # (2 halves, 2 metrics)
        n = np.isfinite(values).sum(axis=0)
        total = np.nansum(values, axis=0)
        out[group] = tuple(np.where(n > 0, total / np.maximum(n, 1), np.nan))
    return out


def _valid_groups(side: _Side, groups: list[str]) -> list[str]:
    """Return the groups with at least 2 rows in and 2 out of them; warn about the others."""
    valid = []
    for group in groups:
        n_in = int(np.sum(side.labels == group))
        n_out = len(side.labels) - n_in
        if n_in >= MIN_CELLS and n_out >= MIN_CELLS:
            valid.append(group)
            continue
        reason = "absent" if n_in == 0 else f"{n_in} rows in the group and {n_out} outside it"
        logger.warning(
            "Group %r in %s: %s (need at least %d of each); its marker metrics are NaN.",
            group,
            side.name,
            reason,
            MIN_CELLS,
        )
    return valid


def _side_de(side: _Side, groups: list[str], k: int, method: str) -> dict:
    """``{group: (log-fold-change per gene, indices of the top-k markers)}`` for one set."""
    valid = _valid_groups(side, groups)
    if not valid:
        return {}
    top = top_markers(side.X, side.labels, valid, k, method=method)
    out = {}
    for group in valid:
        in_group = side.labels == group
        out[group] = (_mean(side.X[in_group]) - _mean(side.X[~in_group]), top[group])
    return out


def top_markers(
    X: Matrix, labels: np.ndarray, groups: list[str], k: int, *, method: str = "wilcoxon"
) -> dict[str, np.ndarray]:
    """Column indices of each group's ``k`` top up-regulated markers (group vs rest, by score).

    ``X`` holds normalised rows; :func:`scanpy.tl.rank_genes_groups` ranks them. Groups with
    fewer than 2 rows in them or outside them are left out of the result; a ValueError is
    raised when no group is left.
    """
    import scanpy as sc
    from anndata import AnnData

    n = len(labels)
    groups = [g for g in groups if MIN_CELLS <= np.sum(labels == g) <= n - MIN_CELLS]
    if not groups:
        msg = f"No group has at least {MIN_CELLS} rows in it and {MIN_CELLS} outside it."
        raise ValueError(msg)
    genes = pd.Index([str(j) for j in range(X.shape[1])])
    obs = pd.DataFrame({"group": pd.Categorical(labels, categories=sorted(set(groups)))})
    obs.index = obs.index.astype(str)
    adata = AnnData(X, obs=obs, var=pd.DataFrame(index=genes))
    with torch_threads_kept():  # numba's Wilcoxon kernels reset torch's thread count
        sc.tl.rank_genes_groups(
            adata, "group", groups=groups, reference="rest", method=method, n_genes=k,
            use_raw=False,
        )  # fmt: skip
    names = adata.uns["rank_genes_groups"]["names"]
    return {g: genes.get_indexer(np.asarray(names[g], dtype=str)) for g in groups}


def _mean(X: Matrix) -> np.ndarray:
    return np.asarray(X.mean(axis=0)).ravel()


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _frame(main: dict, ref: dict, groups: list[str]) -> pd.DataFrame:
    """Rows per (metric, group), ``"all"`` first: the mean over groups where both are defined."""
    rows = []
    for i, metric in enumerate(METRIC_NAMES):
        value = np.array([main[g][i] for g in groups])
        half = np.array([ref[g][i] for g in groups])
        both = np.isfinite(value) & np.isfinite(half)
        overall = (value[both].mean(), half[both].mean()) if both.any() else (np.nan, np.nan)
        rows.append((metric, ALL, *overall))
        rows += [(metric, g, v, h) for g, v, h in zip(groups, value, half, strict=True)]
    df = pd.DataFrame(rows, columns=["metric", "group", "value", "split_half"])
    df = df.astype({"value": float, "split_half": float})
    df["better"] = "higher"
    df["ideal"] = 1.0
    order = {g: i for i, g in enumerate([ALL, *groups])}
    df = df.sort_values("group", key=lambda s: s.map(order), kind="stable")
    return df.reset_index(drop=True)
