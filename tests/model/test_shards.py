"""Sharded generation: n shards joined on disk equal one process's rows for the same seed."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from sc_sed.data import join_shards
from sc_sed.model._shards import block_seed, shard_rows

KW = {"n_steps": 3, "progress_bar": False, "seed": 5, "batch_size": 4}


def _same(got, ref):
    assert got.shape == ref.shape
    assert (got.X != ref.X).nnz == 0
    for key in ref.layers:
        assert (got.layers[key] != ref.layers[key]).nnz == 0
    assert got.obs.equals(ref.obs) and list(got.var_names) == list(ref.var_names)


def test_shard_rows_are_whole_blocks_covering_every_row_once():
    for n_rows, batch, n in [(11, 4, 2), (11, 4, 3), (11, 4, 5), (3, 4, 2), (100, 7, 6)]:
        parts = [shard_rows(n_rows, batch, (i, n)) for i in range(n)]
        rows = [r for part in parts for r in part]
        assert rows == list(range(n_rows))
        assert all(p.start % batch == 0 for p in parts if len(p))
    assert block_seed(1, 0) != block_seed(1, 1) != block_seed(2, 1)


def test_shard_rows_do_not_depend_on_the_number_of_shards(trained):
    model, _ = trained
    ref = model.generate(11, **KW)
    for n in (2, 3):
        parts = [model.generate(11, shard=(i, n), **KW) for i in range(n)]
        got = ad.concat(parts)
        _same(got, ref)
    assert list(parts[1].obs_names) == [f"synthetic_{k}" for k in range(4, 8)]


def test_sharded_memory_stream_and_join_agree(trained, tmp_path):
    model, _ = trained
    ref = model.generate(11, **KW)
    single = ad.read_h5ad(model.generate(11, out=tmp_path / "one.h5ad", **KW))
    paths = [
        model.generate(11, shard=(i, 3), out=tmp_path / f"part_{i}.h5ad", **KW) for i in range(3)
    ]
    got = ad.read_h5ad(join_shards(paths[::-1], tmp_path / "all.h5ad"))
    _same(got, ref)
    _same(single, ref)
    assert "shard" not in got.uns["sc_sed"]
    assert dict(got.uns["sc_sed"]) == dict(single.uns["sc_sed"])


def test_shard_of_labels_counts_and_zarr(trained, tmp_path):
    model, adata = trained
    label = str(adata.obs["cell_type"].cat.categories[0])
    ref = model.generate(None, labels={label: 6}, **KW)
    paths = [
        model.generate(None, labels={label: 6}, shard=(i, 2), out=tmp_path / f"p{i}.zarr", **KW)
        for i in range(2)
    ]
    got = ad.read_zarr(join_shards(paths, tmp_path / "all.zarr"))
    _same(got, ref)


def test_join_checks_the_shards(trained, tmp_path):
    model, _ = trained
    paths = [
        model.generate(8, shard=(i, 2), out=tmp_path / f"part_{i}.h5ad", **KW) for i in range(2)
    ]
    with pytest.raises(ValueError, match="missing"):
        join_shards(paths[:1], tmp_path / "all.h5ad")
    other = model.generate(8, shard=(1, 2), out=tmp_path / "other.h5ad", **{**KW, "seed": 6})
    with pytest.raises(ValueError, match="another run"):
        join_shards([paths[0], other], tmp_path / "all.h5ad")
    plain = model.generate(8, out=tmp_path / "plain.h5ad", **KW)
    with pytest.raises(ValueError, match="not a shard file"):
        join_shards([plain], tmp_path / "all.h5ad")
    assert not (tmp_path / "all.h5ad").exists()


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), "0/2", (0.0, 2)])
def test_bad_shard_is_refused(trained, shard):
    model, _ = trained
    with pytest.raises(ValueError, match="shard"):
        model.generate(4, shard=shard, **KW)


def test_generation_rows_are_reproducible_per_seed(trained):
    model, _ = trained
    a, b = model.generate(9, **KW), model.generate(9, **KW)
    c = model.generate(9, **{**KW, "seed": 6})
    assert (a.X != b.X).nnz == 0 and (a.X != c.X).nnz > 0
    assert np.array_equal(a.obs["cell_type"], b.obs["cell_type"])
