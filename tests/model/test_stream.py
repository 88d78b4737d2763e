"""generate(out=...) streams batches to disk: same AnnData as in memory, same seed."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

KW = {"n_steps": 3, "progress_bar": False, "seed": 7, "batch_size": 4}


def _read(path):
    return ad.read_zarr(path) if str(path).endswith(".zarr") else ad.read_h5ad(path)


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_streamed_file_equals_in_memory_result(trained, tmp_path, suffix):
    model, _ = trained
    ref = model.generate(11, **KW)
    path = model.generate(11, out=tmp_path / f"cells{suffix}", **KW)
    got = _read(path)
    assert got.shape == ref.shape
    assert (got.X != ref.X).nnz == 0 and got.X.dtype == ref.X.dtype
    assert set(got.layers) == set(ref.layers)
    for key in ref.layers:
        assert (got.layers[key] != ref.layers[key]).nnz == 0
    assert got.obs.equals(ref.obs) and list(got.var_names) == list(ref.var_names)
    assert list(got.var.columns) == list(ref.var.columns)
    assert got.uns["sc_sed"]["seed"] == 7 and set(got.uns) == set(ref.uns)
    assert [p.name for p in tmp_path.iterdir()] == [f"cells{suffix}"]


def test_stream_checks_the_path_before_generating(trained, tmp_path, monkeypatch):
    model, _ = trained
    monkeypatch.setattr(model, "_generate_batches", lambda *a, **k: pytest.fail("generated"))
    with pytest.raises(ValueError, match="does not exist"):
        model.generate(3, out=tmp_path / "missing" / "x.h5ad", **KW)
    with pytest.raises(ValueError, match=r"\.h5ad or \.zarr"):
        model.generate(3, out=tmp_path / "x.csv", **KW)
    (tmp_path / "x.h5ad").write_text("keep")
    with pytest.raises(ValueError, match="overwrite=True"):
        model.generate(3, out=tmp_path / "x.h5ad", **KW)
    assert (tmp_path / "x.h5ad").read_text() == "keep"


def test_stream_overwrite_and_labels(trained, tmp_path):
    model, adata = trained
    label = str(adata.obs["cell_type"].cat.categories[1])
    path = tmp_path / "x.h5ad"
    path.write_text("old")
    model.generate(None, labels={label: 5}, out=path, overwrite=True, **KW)
    got = ad.read_h5ad(path)
    assert got.n_obs == 5 and (got.obs["cell_type"] == label).all()
    assert np.all(got.X.data > 0)
