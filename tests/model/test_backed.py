"""Backed AnnData (``read_h5ad(..., backed="r")``) registers and trains without densifying."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import sc_sed
from sc_sed.data import matrix_stats, row_nnz

from .conftest import FIT, TINY, tiny_counts


def _written(tmp_path, fmt="csr"):
    adata = tiny_counts()
    x = adata.layers.pop("counts")
    adata.X = sp.csr_matrix(x) if fmt == "csr" else sp.csc_matrix(x)
    path = tmp_path / f"{fmt}.h5ad"
    adata.write_h5ad(path)
    return adata, path


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_row_nnz_and_stats_of_backed_and_in_memory_agree(tmp_path, fmt):
    adata, path = _written(tmp_path, fmt)
    backed = ad.read_h5ad(path, backed="r")
    want = np.diff(sp.csr_matrix(adata.X).indptr)
    dense = adata.X.toarray()
    for x in (adata.X, backed.X, dense):
        np.testing.assert_array_equal(row_nnz(x), want)
    ref = matrix_stats(sp.csr_matrix(adata.X)).to_dict()
    for x in (adata.X, backed.X, dense):
        got = matrix_stats(x, chunk_size=7).to_dict()
        arrays = ("seen", "n_detected", "value_sum", "log_value_sum")
        counted = ("value_vocabulary", "vocabulary_counts", "log_value_histogram")
        assert {k: v for k, v in got.items() if k not in arrays + counted} == {
            k: v for k, v in ref.items() if k not in arrays + counted
        }
        for key in counted:  # exact: counted, not summed
            np.testing.assert_array_equal(got[key], ref[key])
        for key in arrays[:2]:
            np.testing.assert_array_equal(got[key], ref[key])
        for key in arrays[2:]:  # summed in another order: equal up to rounding
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-12)


def test_row_nnz_of_csr_reads_only_indptr(tmp_path):
    import h5py

    adata, path = _written(tmp_path)
    with h5py.File(path, "r+") as f:  # values and column indices are not needed
        for key in ("data", "indices"):
            del f["X"][key]
            f["X"].create_dataset(key, data=np.zeros(0, dtype=np.int32))
    backed = ad.read_h5ad(path, backed="r")
    np.testing.assert_array_equal(row_nnz(backed.X), np.diff(adata.X.indptr))


def test_backed_anndata_trains_and_generates(tmp_path):
    _, path = _written(tmp_path)
    backed = ad.read_h5ad(path, backed="r")
    sc_sed.SEDModel.setup_anndata(backed, labels_key="cell_type")
    model = sc_sed.SEDModel(backed, **TINY)
    model.train(
        max_epochs=1, diffusion_max_epochs=1, batch_size=16,
        datasplitter_kwargs={"bucket_by_length": True}, **FIT,
    )  # fmt: skip
    synth = model.generate(4, n_steps=2, progress_bar=False)
    assert synth.n_obs == 4 and synth.n_vars == backed.n_vars
