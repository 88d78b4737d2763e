import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sc_sed._vocab import TokenVocabulary
from sc_sed.data import (
    csr_to_tokens,
    pairs_to_csr,
    tokens_from_tensor,
    tokens_to_csr,
)


def _random_csr(rng, n=12, d=40, density=0.2):
    x = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 10)
    x[3] = 0  # an empty row
    x.eliminate_zeros()
    return sp.csr_matrix(x)


def test_round_trip_is_exact(rng):
    x = _random_csr(rng)
    tok = csr_to_tokens(x)
    back = tokens_to_csr(tok)
    assert (back != x).nnz == 0
    assert back.dtype == np.float32


def test_framing_sorted_and_masked(rng):
    x = _random_csr(rng)
    tok = csr_to_tokens(x)
    vocab = TokenVocabulary(x.shape[1])
    end, start, pad = vocab.end, vocab.start, vocab.pad
    lengths = np.diff(x.indptr)
    assert tok.index.shape == (x.shape[0], lengths.max() + 2)
    assert (tok.index[:, 0] == start).all()
    for r, n in enumerate(lengths):
        row = tok.index[r]
        assert row[n + 1] == end
        assert (row[n + 2 :] == pad).all()
        pairs = row[1 : n + 1]
        assert (pairs[1:] > pairs[:-1]).all()
    assert torch.equal(tok.n_nonzero, torch.as_tensor(lengths))
    assert tok.pair_mask.sum() == x.nnz
    assert torch.equal(tok.token_mask.sum(1), torch.as_tensor(lengths + 2))


def test_unsorted_input_and_explicit_zeros_are_handled():
    data = np.array([3.0, 0.0, 1.0, 2.0], dtype=np.float32)
    indices = np.array([5, 2, 1, 4])
    indptr = np.array([0, 4])
    x = sp.csr_matrix((data, indices, indptr), shape=(1, 8))
    assert not x.has_sorted_indices
    tok = csr_to_tokens(x)
    assert tok.index[0, 1:4].tolist() == [1, 4, 5]
    assert tok.value[0, 1:4].tolist() == [1.0, 2.0, 3.0]
    assert tok.n_nonzero.item() == 3


def test_dense_and_sparse_tensor_inputs_agree(rng):
    x = _random_csr(rng)
    ref = csr_to_tokens(x)
    for t in (torch.as_tensor(x.toarray()), torch.as_tensor(x.toarray()).to_sparse_csr()):
        tok = tokens_from_tensor(t)
        assert torch.equal(tok.index, ref.index)
        assert torch.equal(tok.value, ref.value)


def test_long_rows_error_and_truncate():
    x = sp.csr_matrix(np.array([[5.0, 1.0, 0.0, 3.0, 2.0], [0.0, 1.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="max_nonzero=2"):
        csr_to_tokens(x, max_nonzero=2)
    tok = csr_to_tokens(x, max_nonzero=2, on_long_rows="truncate")
    # keeps the two largest values (5 at 0, 3 at 3), re-sorted by index
    assert tok.index[0, 1:3].tolist() == [0, 3]
    assert tok.value[0, 1:3].tolist() == [5.0, 3.0]
    assert tok.n_nonzero.tolist() == [2, 1]


def test_pairs_to_csr_ignores_special_ids():
    d = 6
    end, pad = TokenVocabulary(d).end, TokenVocabulary(d).pad
    index = torch.tensor([[0, 2, 5, pad], [1, pad, pad, pad], [pad, pad, pad, pad]])
    value = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [0.0] * 4])
    m = pairs_to_csr(index, value, d)
    assert m.shape == (3, d)
    assert m.toarray().tolist() == [
        [1, 0, 2, 0, 0, 3],
        [0, 4, 0, 0, 0, 0],
        [0] * 6,
    ]
    assert end == d


def test_feature_blocks_are_offset_and_merged(rng):
    a = _random_csr(rng, n=6, d=5)
    b = _random_csr(rng, n=6, d=7)
    tok = tokens_from_tensor(
        [torch.as_tensor(a.toarray()).to_sparse_csr(), torch.as_tensor(b.toarray())]
    )
    joint = sp.hstack([a, b], format="csr")
    ref = csr_to_tokens(joint)
    assert tok.n_features == 12
    assert torch.equal(tok.index, ref.index) and torch.equal(tok.value, ref.value)
