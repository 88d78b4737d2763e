import numpy as np
import pytest
import scipy.sparse as sp
import torch

import sc_sed
from sc_sed.train import (
    AUTO_BUCKET_PADDING,
    LengthBucketBatchSampler,
    SparseDataSplitter,
    padding_factor,
    row_lengths,
)

from ..model.conftest import TINY


def test_row_lengths_of_sparse_dense_and_several_blocks():
    x = np.array([[0, 1, 2], [0, 0, 0], [3, 0, 0]], dtype=float)
    expected = np.array([2, 0, 1])
    np.testing.assert_array_equal(row_lengths([sp.csr_matrix(x)]), expected)
    np.testing.assert_array_equal(row_lengths([sp.csc_matrix(x)]), expected)
    np.testing.assert_array_equal(row_lengths([x]), expected)
    np.testing.assert_array_equal(row_lengths([sp.csr_matrix(x), x[:, :1]]), expected + [0, 0, 1])
    with pytest.raises(ValueError, match="at least one"):
        row_lengths([])


def _lengths(n=300, seed=0):
    return np.random.default_rng(seed).lognormal(6, 0.6, size=n).astype(np.int64)


def _padded(lengths, batches):
    return sum(len(b) * lengths[b].max() for b in batches)


@pytest.mark.parametrize("drop_last", [False, True])
def test_bucket_sampler_covers_every_row_once_in_full_batches(drop_last):
    lengths = _lengths(300)
    sampler = LengthBucketBatchSampler(lengths, 32, pool_batches=4, drop_last=drop_last)
    batches = list(sampler)
    assert len(batches) == len(sampler) == (9 if drop_last else 10)
    seen = np.concatenate(batches)
    assert len(seen) == len(set(seen.tolist()))
    assert len(seen) == (288 if drop_last else 300)
    assert sum(len(b) < 32 for b in batches) == (0 if drop_last else 1)


def test_bucket_sampler_pads_less_than_random_batches_and_varies_by_epoch():
    lengths = _lengths(1000)
    torch.manual_seed(0)
    sampler = LengthBucketBatchSampler(lengths, 32, pool_batches=8)
    epoch1, epoch2 = list(sampler), list(sampler)
    perm = np.random.default_rng(0).permutation(1000)
    random_batches = [perm[i : i + 32] for i in range(0, 1000, 32)]
    assert _padded(lengths, epoch1) < 0.8 * _padded(lengths, random_batches)
    assert {tuple(b) for b in epoch1} != {tuple(b) for b in epoch2}


def test_bucket_sampler_follows_torch_seed():
    lengths = _lengths(200)
    sampler = LengthBucketBatchSampler(lengths, 16)
    torch.manual_seed(3)
    first = list(sampler)
    torch.manual_seed(3)
    assert list(sampler) == first


def test_bucket_sampler_rejects_bad_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketBatchSampler(np.ones(3), 0)


def test_padding_factor():
    assert padding_factor(np.full(50, 7), 16) == 1.0
    assert padding_factor(np.array([], dtype=int), 16) == 1.0
    # two rows per batch, lengths 0 and 98 (+2 framing): 200 padded tokens for 102 real
    assert padding_factor(np.array([0, 98]), 2) == pytest.approx(200 / 102)
    assert padding_factor(np.array([0, 98]), 1) == 1.0


def _long_tailed(n_cells=200, n_genes=60):
    """Counts whose rows hold 1..n_genes non-zeros: random batches pad a lot."""
    rng = np.random.default_rng(0)
    x = np.zeros((n_cells, n_genes), dtype=np.float32)
    for i in range(n_cells):
        x[i, rng.choice(n_genes, size=1 + i % n_genes, replace=False)] = 1 + rng.poisson(2)
    return sc_sed.data.from_dense(x)


def _splitter(adata=None, **kwargs):
    if adata is None:
        adata = _long_tailed()
    sc_sed.SEDModel.setup_anndata(adata)
    model = sc_sed.SEDModel(adata, **TINY)
    splitter = SparseDataSplitter(
        model.adata_manager, max_nonzero=model.max_nonzero_, batch_size=16, **kwargs
    )
    splitter.setup()
    return splitter, adata


def test_splitter_buckets_training_rows_and_keeps_them_sparse():
    splitter, adata = _splitter()
    loader = splitter.train_dataloader()
    assert isinstance(loader.sampler, LengthBucketBatchSampler)
    batches = list(loader)
    assert all(b["X"].layout == torch.sparse_csr for b in batches)
    n_rows = sum(b["X"].shape[0] for b in batches)
    assert n_rows == len(splitter.train_idx)
    lengths = np.diff(adata.X.indptr)[splitter.train_idx]
    bucketed = sum(
        b["X"].shape[0] * int(np.diff(b["X"].crow_indices().numpy()).max()) for b in batches
    )
    assert bucketed < 1.1 * lengths.sum()
    tokens = splitter.on_after_batch_transfer(batches[0], 0)
    assert tokens["tokens_index"].shape[0] == batches[0]["X"].shape[0]


def test_splitter_without_bucketing_uses_scvi_sampler():
    # (DDP's distributed sampler also bypasses bucketing: tests/model/test_ddp.py)
    splitter, _ = _splitter(bucket_by_length=False)
    assert not isinstance(splitter.train_dataloader().sampler, LengthBucketBatchSampler)


def test_splitter_auto_buckets_only_data_that_would_pad_much():
    even = sc_sed.datasets.synthetic_counts(n_cells=200, n_genes=60, seed=1)
    assert padding_factor(np.diff(even.layers["counts"].indptr), 16) < AUTO_BUCKET_PADDING
    splitter, _ = _splitter(sc_sed.data.from_dense(even.layers["counts"].toarray()))
    assert not isinstance(splitter.train_dataloader().sampler, LengthBucketBatchSampler)
    skewed = _long_tailed()
    assert padding_factor(np.diff(skewed.X.indptr), 16) > AUTO_BUCKET_PADDING
    splitter, _ = _splitter(skewed)
    assert isinstance(splitter.train_dataloader().sampler, LengthBucketBatchSampler)
    splitter, _ = _splitter(skewed, bucket_by_length=True)
    assert isinstance(splitter.train_dataloader().sampler, LengthBucketBatchSampler)
