"""Cell- and gene-level statistics of count matrices for the fidelity report (NumPy only).

Every function takes CSR (or dense) count matrices with the same genes and returns plain
floats, so the report can put SED, the baselines and a real-vs-real reference side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr, wasserstein_distance


def csr(x: Any) -> sp.csr_matrix:
    """Float64 CSR copy without explicit zeros."""
    out = sp.csr_matrix(x, dtype=np.float64)
    out.eliminate_zeros()
    return out


def library_size(x: sp.csr_matrix) -> np.ndarray:
    """Total count per cell."""
    return np.asarray(x.sum(1)).ravel()


def detected_genes(x: sp.csr_matrix) -> np.ndarray:
    """Number of non-zero genes per cell."""
    return np.diff(x.indptr).astype(np.float64)


def gene_means(x: sp.csr_matrix) -> np.ndarray:
    """Mean count per gene."""
    return np.asarray(x.mean(0)).ravel()


def detection_rate(x: sp.csr_matrix) -> np.ndarray:
    """Fraction of cells in which each gene is non-zero."""
    return np.diff(sp.csc_matrix(x).indptr) / max(1, x.shape[0])


def log_normalise(x: sp.csr_matrix, genes: np.ndarray | None = None) -> np.ndarray:
    """Dense ``log1p(counts / library size * 1e4)``, restricted to ``genes``."""
    lib = np.maximum(library_size(x), 1.0)
    scaled = sp.diags(1e4 / lib) @ x
    if genes is not None:
        scaled = scaled[:, genes]
    return np.log1p(scaled.toarray())


def top_variable_genes(x: sp.csr_matrix, n: int) -> np.ndarray:
    """Indices of the ``n`` genes with the highest variance of log-normalised counts."""
    lib = np.maximum(library_size(x), 1.0)
    y = (sp.diags(1e4 / lib) @ x).tocsr()
    y.data = np.log1p(y.data)
    mean = np.asarray(y.mean(0)).ravel()
    var = np.asarray(y.multiply(y).mean(0)).ravel() - mean**2
    return np.sort(np.argsort(-var)[: min(n, x.shape[1])])


def _safe_corr(a: np.ndarray, b: np.ndarray, kind: str = "pearson") -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float((pearsonr if kind == "pearson" else spearmanr)(a, b)[0])


def gene_correlation_matrix(x: sp.csr_matrix, genes: np.ndarray) -> np.ndarray:
    """Pearson correlations between ``genes`` over cells (log-normalised; constant genes → 0)."""
    y = log_normalise(x, genes)
    y = y - y.mean(0)
    norm = np.sqrt((y**2).sum(0))
    norm[norm == 0] = np.inf
    c = (y.T @ y) / np.outer(norm, norm)
    return np.nan_to_num(c)


def correlation_agreement(real: sp.csr_matrix, synth: sp.csr_matrix, genes: np.ndarray) -> dict:
    """How well the gene–gene correlation structure on ``genes`` is reproduced.

    ``gene_corr_pearson``: Pearson correlation of the upper triangles of the two correlation
    matrices; ``gene_corr_mae``: their mean absolute difference.
    """
    a, b = gene_correlation_matrix(real, genes), gene_correlation_matrix(synth, genes)
    iu = np.triu_indices(len(genes), k=1)
    return {
        "gene_corr_pearson": _safe_corr(a[iu], b[iu]),
        "gene_corr_mae": float(np.abs(a[iu] - b[iu]).mean()) if len(iu[0]) else float("nan"),
    }


def pc_spread(real: Any, synth: Any, genes: np.ndarray, n_pcs: int = 10) -> dict[str, float]:
    """How far synthetic cells spread along the real cells' main axes, and off them.

    Principal components of the real cells' log-normalised ``genes``; both sets are
    projected on the first ``n_pcs`` (centred on the real mean). ``pc_sd_ratio_mean`` /
    ``_min``: mean / smallest over those PCs of the synthetic SD divided by the real SD
    (1 ideal; well below 1 means blurred cells, e.g. mixtures of cell types that sit
    between the real clusters). ``off_pc_norm_ratio``: mean norm of what the PCs leave
    out, synthetic over real (above 1: noise outside the real cells' structure). NaN
    when there are too few genes or cells for one component. The PCs are fitted on
    ``real`` itself, so other real cells score below 1 too: compare with them.
    """
    genes = np.asarray(genes)
    r, s = log_normalise(csr(real), genes), log_normalise(csr(synth), genes)
    k = min(n_pcs, len(genes) - 1, r.shape[0] - 1)  # something is always left off the PCs
    if k < 1 or s.shape[0] < 2:
        return dict.fromkeys(("pc_sd_ratio_mean", "pc_sd_ratio_min", "off_pc_norm_ratio"), np.nan)
    mean = r.mean(0)
    basis = np.linalg.svd(r - mean, full_matrices=False)[2][:k]  # (k, genes)
    pr, ps = (r - mean) @ basis.T, (s - mean) @ basis.T
    ratio = ps.std(0) / np.maximum(pr.std(0), 1e-12)
    off_r = np.linalg.norm(r - mean - pr @ basis, axis=1).mean()
    off_s = np.linalg.norm(s - mean - ps @ basis, axis=1).mean()
    return {
        "pc_sd_ratio_mean": float(ratio.mean()),
        "pc_sd_ratio_min": float(ratio.min()),
        "off_pc_norm_ratio": float(off_s / off_r) if off_r > 1e-9 else np.nan,
    }


def fidelity_metrics(real: Any, synth: Any, hvg: np.ndarray) -> dict[str, float]:
    """Cell-size distributions, per-gene agreement and gene–gene correlation, one dict.

    ``*_w1`` are 1-D Wasserstein distances of per-cell library size and detected genes;
    ``*_mean_*`` compare the two sets' means of those. Per-gene agreement is on the genes
    seen in either set: Pearson correlation of ``log1p`` gene means and of detection rates,
    and the mean absolute detection-rate difference; :func:`pc_spread` on ``hvg``.
    """
    r, s = csr(real), csr(synth)
    lib_r, lib_s = library_size(r), library_size(s)
    nnz_r, nnz_s = detected_genes(r), detected_genes(s)
    mean_r, mean_s = gene_means(r), gene_means(s)
    det_r, det_s = detection_rate(r), detection_rate(s)
    seen = (mean_r > 0) | (mean_s > 0)
    out = {
        "library_size_w1": float(wasserstein_distance(lib_r, lib_s)),
        "library_size_mean_real": float(lib_r.mean()),
        "library_size_mean_synth": float(lib_s.mean()),
        "detected_genes_w1": float(wasserstein_distance(nnz_r, nnz_s)),
        "detected_genes_mean_real": float(nnz_r.mean()),
        "detected_genes_mean_synth": float(nnz_s.mean()),
        "detected_genes_sd_real": float(nnz_r.std()),
        "detected_genes_sd_synth": float(nnz_s.std()),
        "lib_vs_detected_corr_real": _safe_corr(np.log1p(lib_r), np.log1p(nnz_r)),
        "lib_vs_detected_corr_synth": _safe_corr(np.log1p(lib_s), np.log1p(nnz_s)),
        "gene_mean_log_pearson": _safe_corr(np.log1p(mean_r[seen]), np.log1p(mean_s[seen])),
        "gene_detection_pearson": _safe_corr(det_r[seen], det_s[seen]),
        "gene_detection_mae": float(np.abs(det_r - det_s)[seen].mean()),
        "mean_count_per_detection_real": float(lib_r.sum() / max(1.0, nnz_r.sum())),
        "mean_count_per_detection_synth": float(lib_s.sum() / max(1.0, nnz_s.sum())),
    }
    return out | correlation_agreement(r, s, hvg) | pc_spread(r, s, hvg)


def stratified_subset(labels: np.ndarray, counts: dict, seed: int) -> np.ndarray:
    """Row indices with ``counts[label]`` rows of each label (fewer if not available)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels).astype(str)
    rows = [rng.permutation(np.flatnonzero(labels == str(lab)))[:n] for lab, n in counts.items()]
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=int)


def bernoulli_index_nll(train: Any, heldout: Any) -> float:
    """Index NLL per target token (pairs + END) of independent per-gene detections.

    The detection rate of every gene is its training rate (genes never seen in training
    are excluded, as the decoder masks them); the held-out cells' NLL is divided by their
    number of non-zeros plus one END, like the decoder's ``index_nll_per_token``.
    """
    t, h = csr(train), csr(heldout)
    rate = detection_rate(t)
    seen = rate > 0
    r = np.clip(rate[seen], 1e-6, 1 - 1e-6)
    det = h[:, seen].tocsr()
    det.data[:] = 1.0  # detected or not; the counts do not matter here
    n_det = detected_genes(det)
    ll = det.multiply(np.log(r) - np.log1p(-r)[None]).sum() + h.shape[0] * np.log1p(-r).sum()
    return float(-ll / (n_det.sum() + h.shape[0]))


def label_mean_poisson(x: Any, labels: np.ndarray, rows: np.ndarray, seed: int) -> sp.csr_matrix:
    """Poisson counts of each row's label-mean profile, at that row's library size.

    A reference generator with no structure inside a label: row ``i`` of the result draws
    ``Poisson(l_i · p_label(i))``, where ``l_i`` is the library size of training row
    ``rows[i]`` and ``p_label`` the mean of the label's training rows scaled to sum 1. A
    method that scores worse than it loses what the label alone says about a cell.

    Parameters
    ----------
    x
        ``(n_train, D)`` training counts.
    labels
        ``(n_train,)`` labels of the training rows.
    rows
        Training rows whose labels and library sizes the generated rows take.
    seed
        Seed of the Poisson draws.
    """
    x = csr(x).astype(np.float64)
    lib = library_size(x)
    labels = np.asarray(labels).astype(str)
    normalised = sp.diags(1.0 / np.maximum(lib, 1e-12)) @ x
    rng = np.random.default_rng(seed)
    positions, blocks = [], []
    for lab in np.unique(labels[rows]):
        mine = np.flatnonzero(labels[rows] == lab)  # positions in ``rows``
        profile = np.asarray(normalised[labels == lab].mean(axis=0)).ravel()
        positions.append(mine)
        blocks.append(sp.csr_matrix(rng.poisson(np.outer(lib[rows[mine]], profile))))
    order = np.argsort(np.concatenate(positions), kind="stable")
    return sp.vstack(blocks, format="csr")[order].astype(np.float32)
