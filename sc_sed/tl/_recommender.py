"""A small exact item-kNN recommender and its recall@k / NDCG@k on hidden interactions.

Used by :func:`~sc_sed.tl.interaction_metrics` to train on one set of users (real or synthetic)
and score on held-out real users. Everything works on binarised CSR matrices (users x items).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

#: Fraction of a held-out user's items that are hidden (at least one).
HIDDEN_FRACTION = 0.2
#: Test users scored per block: the dense score block is ``(_BLOCK, n_items)``.
_BLOCK = 256


@dataclass
class HeldOut:
    """Held-out users: the items they show the recommender and the items it must find."""

    known: sparse.csr_matrix
    hidden: sparse.csr_matrix


def binarize(X: sparse.csr_matrix) -> sparse.csr_matrix:
    """1.0 where ``X`` is non-zero (stored zeros dropped), as float64 CSR."""
    B = sparse.csr_matrix(X, dtype=np.float64, copy=True)
    B.data = (B.data != 0).astype(np.float64)
    B.eliminate_zeros()
    return B


def item_similarity(B: sparse.csr_matrix) -> sparse.csr_matrix:
    """Cosine similarity between the item columns of binarised users ``B``, zero diagonal.

    Sparse: its number of entries is at most the sum over users of (items per user) squared.
    """
    C = (B.T @ B).tocsr()
    norms = np.sqrt(C.diagonal())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    S = (sparse.diags(inv) @ C @ sparse.diags(inv)).tocsr()
    S = (S - sparse.diags(S.diagonal())).tocsr()
    S.eliminate_zeros()
    return S


def hold_out(B: sparse.csr_matrix, rng: np.random.Generator) -> HeldOut | None:
    """Hide a random 20% (at least 1) of the items of each user with at least 2 of them.

    Returns ``None`` when no user has 2 items.
    """
    counts = np.diff(B.indptr)
    users = np.flatnonzero(counts >= 2)
    if len(users) == 0:
        return None
    B = B[users]
    hide = np.zeros(B.nnz, dtype=bool)
    for u in range(B.shape[0]):
        start, stop = B.indptr[u], B.indptr[u + 1]
        n_hide = max(1, int(round(HIDDEN_FRACTION * (stop - start))))
        hide[start + rng.choice(stop - start, size=n_hide, replace=False)] = True
    known, hidden = B.copy(), B.copy()
    known.data[hide] = 0.0
    hidden.data[~hide] = 0.0
    known.eliminate_zeros()
    hidden.eliminate_zeros()
    return HeldOut(known=known, hidden=hidden)


def top_k(scores: np.ndarray, known: sparse.csr_matrix, k: int) -> np.ndarray:
    """Per row, the ``k`` best-scoring unknown items with a positive score (-1 pads the rest).

    Ties are broken by the lower item index; known items are never recommended.
    """
    scores = scores.copy()
    rows = np.repeat(np.arange(known.shape[0]), np.diff(known.indptr))
    scores[rows, known.indices] = -np.inf
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    positive = np.take_along_axis(scores, order, axis=1) > 0
    return np.where(positive, order, -1)


def recall_ndcg(S: sparse.csr_matrix, held: HeldOut, k: int) -> tuple[float, float]:
    """Mean recall@k and NDCG@k of the item-kNN with similarity ``S`` over the held-out users.

    Score of an item = sum of its similarities to the user's known items. Recall@k = hits /
    min(k, number hidden); NDCG@k = DCG / ideal DCG with binary gains and ``1 / log2(rank + 1)``.
    """
    recalls, ndcgs = [], []
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    for start in range(0, held.known.shape[0], _BLOCK):
        block = slice(start, start + _BLOCK)
        known, hidden = held.known[block], held.hidden[block]
        ranked = top_k(np.asarray((known @ S).todense()), known, k)
        hit = np.zeros(ranked.shape, dtype=bool)
        for u in range(ranked.shape[0]):
            items = hidden.indices[hidden.indptr[u] : hidden.indptr[u + 1]]
            hit[u] = np.isin(ranked[u], items) & (ranked[u] >= 0)
        n_hidden = np.minimum(np.diff(hidden.indptr), k)
        ideal = np.cumsum(discount)[n_hidden - 1]
        recalls.append(hit.sum(axis=1) / n_hidden)
        ndcgs.append((hit * discount[: hit.shape[1]]).sum(axis=1) / ideal)
    return float(np.concatenate(recalls).mean()), float(np.concatenate(ndcgs).mean())
