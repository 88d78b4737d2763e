"""AnnData from a zarr store with X read lazily (``sc_sed.data.read_lazy_zarr``) trains."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from anndata._core.sparse_dataset import BaseCompressedSparseDataset

import sc_sed
from sc_sed.data import matrix_stats, read_lazy_zarr

from .conftest import FIT, TINY, tiny_counts


def _store(tmp_path, x=sp.csr_matrix):
    adata = tiny_counts()
    adata.X = x(adata.layers.pop("counts"))
    path = tmp_path / "counts.zarr"
    adata.write_zarr(path)
    return adata, path


def test_lazy_zarr_keeps_x_on_disk_and_trains(tmp_path, monkeypatch):
    adata, path = _store(tmp_path)
    lazy = read_lazy_zarr(path)
    assert isinstance(lazy.X, BaseCompressedSparseDataset)
    assert lazy.obs.equals(adata.obs) and lazy.var.equals(adata.var)

    def never(*args, **kwargs):
        raise AssertionError("the whole matrix was loaded into memory")

    monkeypatch.setattr(BaseCompressedSparseDataset, "to_memory", never)
    assert matrix_stats(lazy.X, chunk_size=7).to_dict()["max_nonzero"] == int(
        np.diff(adata.X.indptr).max()
    )
    sc_sed.SEDModel.setup_anndata(lazy, labels_key="cell_type")
    model = sc_sed.SEDModel(lazy, **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=16, **FIT)
    assert model.is_trained_
    assert isinstance(lazy.X, BaseCompressedSparseDataset), "X still on disk"
    synth = model.generate(4, n_steps=2, progress_bar=False)
    assert synth.n_obs == 4 and synth.n_vars == adata.n_vars


@pytest.mark.parametrize(("x", "what"), [(sp.csc_matrix, "csc_matrix"), (np.asarray, "dense")])
def test_lazy_zarr_needs_csr(tmp_path, x, what):
    _, path = _store(tmp_path, lambda m: x(m.toarray()) if x is np.asarray else x(m))
    with pytest.raises(ValueError, match=f"{what}.*csr_matrix"):
        read_lazy_zarr(path)
