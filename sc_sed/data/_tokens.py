"""Sparse rows <-> padded, index-sorted (feature index, value) token tensors.

A row with ``l`` non-zeros becomes the framed sequence
``[START, (i_1, v_1), ..., (i_l, v_l), END, PAD, ...]`` with ``i_1 < ... < i_l``.
The special ids come from :class:`~sc_sed._vocab.TokenVocabulary` (after the feature
ids, so feature ids keep their meaning).

Everything here is vectorised over the non-zeros (no Python loop per row) and never
allocates a ``(batch, n_features)`` tensor for sparse input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from sc_sed._vocab import TokenVocabulary

LongRows = Literal["error", "truncate"]


@dataclass
class TokenBatch:
    """Padded, framed (index, value) tokens of a batch of sparse rows.

    Attributes
    ----------
    index
        ``(batch, length)`` long tensor: START, sorted feature ids, END, then PAD.
    value
        ``(batch, length)`` float tensor: the value of each pair, 0 at special tokens.
    n_nonzero
        ``(batch,)`` long tensor: number of pairs per row.
    n_features
        Number of features ``D`` (defines the special ids).
    """

    index: torch.Tensor
    value: torch.Tensor
    n_nonzero: torch.Tensor
    n_features: int

    @property
    def vocab(self) -> TokenVocabulary:
        """The token ids of this batch's features."""
        return TokenVocabulary(self.n_features)

    @property
    def pair_mask(self) -> torch.Tensor:
        """``(batch, length)`` bool: True at (index, value) pairs."""
        return self.vocab.is_feature(self.index)

    @property
    def token_mask(self) -> torch.Tensor:
        """``(batch, length)`` bool: True at every non-PAD token (START, pairs, END)."""
        return self.index != self.vocab.pad


def _row_of_each_entry(crow: torch.Tensor) -> torch.Tensor:
    counts = crow[1:] - crow[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=crow.device), counts)


def _sort_within_rows(row, col, val, n_features):
    key = row * n_features + col
    order = torch.argsort(key, stable=True)
    return row[order], col[order], val[order]


def _truncate_rows(row, col, val, n_rows, max_nonzero, n_features):
    """Keep the ``max_nonzero`` largest values of each row (ties: lower index first)."""
    order = torch.argsort(-val, stable=True)
    order = order[torch.argsort(row[order], stable=True)]
    row, col, val = row[order], col[order], val[order]
    starts = torch.zeros(n_rows + 1, dtype=torch.long, device=row.device)
    starts[1:] = torch.cumsum(torch.bincount(row, minlength=n_rows), 0)
    rank = torch.arange(row.numel(), device=row.device) - starts[row]
    keep = rank < max_nonzero
    return _sort_within_rows(row[keep], col[keep], val[keep], n_features)


def _check_row_lengths(n_nonzero, max_nonzero, on_long_rows):
    if max_nonzero is None or n_nonzero.numel() == 0:
        return False
    longest = int(n_nonzero.max())
    if longest <= max_nonzero:
        return False
    if on_long_rows == "truncate":
        return True
    msg = (
        f"A row has {longest} non-zero entries, more than max_nonzero={max_nonzero}. "
        "Raise `max_nonzero` (it defaults to the longest training row) or pass "
        "`on_long_rows='truncate'` to keep each row's `max_nonzero` largest values."
    )
    raise ValueError(msg)


def tokens_from_csr(
    crow: torch.Tensor,
    col: torch.Tensor,
    val: torch.Tensor,
    n_features: int,
    *,
    max_nonzero: int | None = None,
    on_long_rows: LongRows = "error",
) -> TokenBatch:
    """Frame CSR rows as padded, index-sorted token tensors.

    Parameters
    ----------
    crow
        ``(batch + 1,)`` row pointer.
    col
        ``(nnz,)`` feature ids.
    val
        ``(nnz,)`` values. Explicitly stored zeros are dropped; entries repeating a
        (row, col) position are summed.
    n_features
        Number of features ``D``.
    max_nonzero
        Longest allowed row. ``None`` allows any length.
    on_long_rows
        ``"error"`` raises on a longer row; ``"truncate"`` keeps its ``max_nonzero``
        largest values (ties broken towards lower feature ids).

    Returns
    -------
    The framed batch; its length is the longest row in the batch plus two.
    """
    row = _row_of_each_entry(crow.long())
    return _tokens_from_entries(
        row, col.long(), val, crow.numel() - 1, n_features, max_nonzero, on_long_rows
    )


def _sum_duplicates(row, col, val, n_features):
    """Sum sorted entries that share a (row, col) position, as SciPy's ``sum_duplicates``."""
    if row.numel() < 2:
        return row, col, val
    key = row * n_features + col
    first = torch.ones_like(key, dtype=torch.bool)
    first[1:] = key[1:] != key[:-1]
    if bool(first.all()):
        return row, col, val
    group = torch.cumsum(first.long(), 0) - 1
    summed = torch.zeros(row.numel(), dtype=val.dtype, device=val.device)
    summed = summed.index_add_(0, group, val)[: group[-1] + 1]
    return row[first], col[first], summed


def _tokens_from_entries(row, col, val, n_rows, n_features, max_nonzero, on_long_rows):
    """Frame (row, col, val) entries in any order as token tensors.

    Duplicated (row, col) entries are summed and zeros (also sums that cancel) dropped,
    so each row's feature ids are strictly increasing.
    """
    row, col, val = _sort_within_rows(row, col, val.float(), n_features)
    row, col, val = _sum_duplicates(row, col, val, n_features)
    keep = val != 0
    row, col, val = row[keep], col[keep], val[keep]
    n_nonzero = torch.bincount(row, minlength=n_rows)
    if _check_row_lengths(n_nonzero, max_nonzero, on_long_rows):
        row, col, val = _truncate_rows(row, col, val, n_rows, max_nonzero, n_features)
        n_nonzero = torch.bincount(row, minlength=n_rows)
    vocab = TokenVocabulary(n_features)
    length = int(n_nonzero.max()) + 2 if n_rows > 0 else 2
    index = torch.full((n_rows, length), vocab.pad, dtype=torch.long, device=col.device)
    value = torch.zeros((n_rows, length), dtype=torch.float32, device=col.device)
    starts = torch.cumsum(n_nonzero, 0) - n_nonzero
    pos = torch.arange(row.numel(), device=col.device) - starts[row] + 1
    index[:, 0] = vocab.start
    index[row, pos] = col
    value[row, pos] = val
    index[torch.arange(n_rows, device=col.device), n_nonzero + 1] = vocab.end
    return TokenBatch(index, value, n_nonzero, n_features)


def tokens_from_tensor(
    x: torch.Tensor | Sequence[torch.Tensor],
    *,
    max_nonzero: int | None = None,
    on_long_rows: LongRows = "error",
) -> TokenBatch:
    """Frame a batch given as a torch tensor (sparse CSR/CSC/COO or dense).

    Parameters
    ----------
    x
        ``(batch, n_features)`` tensor, or a sequence of ``(batch, n_features_k)``
        tensors that are feature blocks of one row (e.g. MuData modalities): block ``k``'s
        features get ids offset by the sizes of the blocks before it. Sparse layouts are
        read as they are; dense input (the user's data was dense) is converted without
        copying the zeros.
    max_nonzero
        See :func:`tokens_from_csr`.
    on_long_rows
        See :func:`tokens_from_csr`.

    Returns
    -------
    The framed batch.
    """
    blocks = [x] if isinstance(x, torch.Tensor) else list(x)
    rows, cols, vals, offset = [], [], [], 0
    for block in blocks:
        block = block if block.layout == torch.sparse_csr else block.to_sparse_csr()
        rows.append(_row_of_each_entry(block.crow_indices().long()))
        cols.append(block.col_indices().long() + offset)
        vals.append(block.values())
        offset += block.shape[1]
    return _tokens_from_entries(
        torch.cat(rows), torch.cat(cols), torch.cat(vals), blocks[0].shape[0], offset,
        max_nonzero, on_long_rows,
    )  # fmt: skip


def csr_to_tokens(
    x: sp.csr_matrix | sp.csr_array | np.ndarray,
    *,
    max_nonzero: int | None = None,
    on_long_rows: LongRows = "error",
    device: torch.device | str = "cpu",
) -> TokenBatch:
    """Frame SciPy CSR (or dense NumPy) rows as padded, index-sorted tokens.

    Parameters
    ----------
    x
        ``(batch, n_features)`` matrix.
    max_nonzero
        See :func:`tokens_from_csr`.
    on_long_rows
        See :func:`tokens_from_csr`.
    device
        Device of the returned tensors.

    Returns
    -------
    The framed batch.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> tok = csr_to_tokens(sp.csr_matrix([[0.0, 2.0, 0.0, 1.0]]))
    >>> tok.index.tolist()  # START=5, END=4
    [[5, 1, 3, 4]]
    """
    x = sp.csr_matrix(x)
    return tokens_from_csr(
        torch.as_tensor(x.indptr, device=device),
        torch.as_tensor(x.indices, device=device),
        torch.as_tensor(x.data, device=device),
        x.shape[1],
        max_nonzero=max_nonzero,
        on_long_rows=on_long_rows,
    )


def pairs_to_csr(
    index: torch.Tensor | np.ndarray,
    value: torch.Tensor | np.ndarray,
    n_features: int,
    *,
    dtype: np.dtype | type = np.float32,
) -> sp.csr_matrix:
    """Scatter decoded (index, value) pairs into a CSR matrix.

    Parameters
    ----------
    index
        ``(batch, length)`` feature ids; any id outside ``[0, n_features)`` (END, START,
        PAD) marks a position without a pair. Ids within a row must be strictly increasing.
    value
        ``(batch, length)`` values of the pairs.
    n_features
        Number of features ``D``.
    dtype
        dtype of the returned matrix.

    Returns
    -------
    ``(batch, n_features)`` CSR matrix with sorted indices; every other entry is an exact zero.
    """
    index = torch.as_tensor(index).cpu().numpy()
    value = torch.as_tensor(value).cpu().numpy()
    keep = (index >= 0) & (index < n_features) & (value != 0)
    n_nonzero = keep.sum(axis=1)
    indptr = np.zeros(index.shape[0] + 1, dtype=np.int64)
    np.cumsum(n_nonzero, out=indptr[1:])
    mat = sp.csr_matrix(
        (value[keep].astype(dtype), index[keep].astype(np.int32), indptr),
        shape=(index.shape[0], n_features),
    )
    mat.has_sorted_indices = True
    return mat


def tokens_to_csr(tokens: TokenBatch, *, dtype: np.dtype | type = np.float32) -> sp.csr_matrix:
    """Turn a :class:`TokenBatch` back into a CSR matrix (exact inverse of :func:`csr_to_tokens`).

    Parameters
    ----------
    tokens
        The framed batch.
    dtype
        dtype of the returned matrix.

    Returns
    -------
    ``(batch, n_features)`` CSR matrix.
    """
    return pairs_to_csr(tokens.index, tokens.value, tokens.n_features, dtype=dtype)
