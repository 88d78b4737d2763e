"""Shards are always well formed, and joining them never loses or overwrites an input."""

from __future__ import annotations

import anndata as ad
import h5py
import pytest
import scipy.sparse as sp

from sc_sed._fs import STAGE_TAG, OutputExistsError
from sc_sed.data import join_shards

KW = {"n_steps": 2, "progress_bar": False, "seed": 2}


def _same(got, ref):
    assert got.shape == ref.shape
    assert (got.X != ref.X).nnz == 0
    assert got.obs.equals(ref.obs) and list(got.var_names) == list(ref.var_names)


def test_empty_shard_in_memory_is_a_valid_anndata(tiny_model):
    full = tiny_model.generate(100, **KW)  # default batch_size 256: one seed block
    empty = tiny_model.generate(100, shard=(0, 2), **KW)
    assert isinstance(empty.X, sp.csr_matrix) and empty.X.shape == (0, full.n_vars)
    assert list(empty.var_names) == list(full.var_names)
    assert list(empty.obs.columns) == list(full.obs.columns)
    assert all(empty.obs[c].dtype == full.obs[c].dtype for c in full.obs.columns)
    assert empty.uns["sc_sed"]["shard"] == [0, 2, 0, 100]
    _same(tiny_model.generate(100, shard=(1, 2), **KW), full)


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_empty_shard_files_are_valid_and_join(tiny_model, tmp_path, suffix):
    ref = tiny_model.generate(5, batch_size=2, **KW)  # 3 seed blocks over 5 shards
    paths = [
        tiny_model.generate(5, batch_size=2, shard=(i, 5), out=tmp_path / f"p{i}{suffix}", **KW)
        for i in range(5)
    ]
    read = ad.read_zarr if suffix == ".zarr" else ad.read_h5ad
    sizes = [read(p).n_obs for p in paths]
    assert 0 in sizes and sum(sizes) == 5
    first_empty = read(paths[sizes.index(0)])
    assert first_empty.X.shape == (0, ref.n_vars) and sp.issparse(first_empty.X)
    _same(read(join_shards(paths[::-1], tmp_path / f"all{suffix}")), ref)


def _shards(model, tmp_path, n=2):
    return [
        model.generate(6, batch_size=3, shard=(i, n), out=tmp_path / f"s{i}.h5ad", **KW)
        for i in range(n)
    ]


def test_out_that_is_an_input_is_refused_before_anything_is_deleted(
    tiny_model, tmp_path, tree
):
    s0, s1 = _shards(tiny_model, tmp_path)
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.h5ad"
    link.symlink_to(s0)
    before = {p: tree(p) for p in (s0, s1)}
    for out in (s0, s1, tmp_path / "sub" / ".." / "s0.h5ad", link):
        with pytest.raises(ValueError, match="one of the shard files"):
            join_shards([s0, s1], out=out, overwrite=True)
    assert {p: tree(p) for p in (s0, s1)} == before
    assert link.is_symlink() and link.resolve() == s0.resolve()


def test_every_input_is_checked_before_writing(tiny_model, tmp_path, tree):
    s0, s1 = _shards(tiny_model, tmp_path)
    out = join_shards([s0, s1], tmp_path / "all.h5ad")
    joined = tree(out)
    with h5py.File(s1, "a") as f:
        del f["X"]  # a damaged shard
    with pytest.raises(ValueError, match="s1.h5ad"):
        join_shards([s0, s1], out, overwrite=True)
    assert tree(out) == joined
    s1.write_bytes(s1.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match="not a readable shard file"):
        join_shards([s1, s0], tmp_path / "new.h5ad")
    assert not (tmp_path / "new.h5ad").exists()
    assert not [p for p in tmp_path.iterdir() if STAGE_TAG in p.name]


def test_join_refuses_to_replace_a_user_folder(tiny_model, tmp_path, tree):
    s0, s1 = _shards(tiny_model, tmp_path)
    user = tmp_path / "all.zarr"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="did not write"):
        join_shards([s0, s1], user, overwrite=True)
    assert tree(user) == {".": None, "keep.txt": b"mine"}
