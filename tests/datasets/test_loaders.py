"""Offline and online real-data loaders (no test touches the network)."""

from __future__ import annotations

import ast
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import sc_sed
from sc_sed.data._images import to_images
from sc_sed.datasets import digits, pbmc3k_counts, pbmc68k_counts


def assert_canonical(X) -> None:
    assert type(X) is sp.csr_matrix
    assert X.dtype == np.float32
    assert X.has_sorted_indices
    assert np.all(X.data != 0)


@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    return pbmc68k_counts()


def test_pbmc68k_counts_shape_and_keys(pbmc):
    assert pbmc.shape == (700, 765)
    assert_canonical(pbmc.X)
    assert isinstance(pbmc.obs["bulk_labels"].dtype, pd.CategoricalDtype)
    assert {"n_counts", "louvain", "phase"} <= set(pbmc.obs.columns)
    assert list(pbmc.var_names) == list(sc.datasets.pbmc68k_reduced().raw.var_names)


def test_pbmc68k_counts_integral_and_layer(pbmc):
    assert np.array_equal(pbmc.X.data, np.round(pbmc.X.data))
    assert pbmc.X.data.min() >= 1
    assert (pbmc.X != pbmc.layers["counts"]).nnz == 0
    assert pbmc.layers["counts"] is not pbmc.X
    assert np.diff(pbmc.X.indptr).min() > 0  # no empty cell
    # normalising the counts gives back the bundled log1p values
    bundled = sc.datasets.pbmc68k_reduced()
    scale = 1e4 / bundled.obs["n_counts"].to_numpy()[:, None]
    expected = bundled.raw.X.toarray()
    np.testing.assert_allclose(np.log1p(pbmc.X.toarray() * scale), expected, atol=0.05)


def test_pbmc68k_counts_raises_when_not_integral(monkeypatch):
    bundled = sc.datasets.pbmc68k_reduced()
    bundled.obs["n_counts"] = bundled.obs["n_counts"] * 1.37
    monkeypatch.setattr(sc.datasets, "pbmc68k_reduced", lambda: bundled)
    with pytest.raises(RuntimeError, match="not integral"):
        pbmc68k_counts()


def test_digits():
    adata = digits()
    assert adata.shape == (1797, 64)
    assert_canonical(adata.X)
    assert adata.obs["digit"].cat.categories.tolist() == [str(d) for d in range(10)]
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(to_images(adata), load_digits().images.astype(np.float32))


def test_pbmc3k_offline_error(monkeypatch):
    def offline():
        raise OSError("Name or service not known")

    monkeypatch.setattr(sc.datasets, "pbmc3k", offline)
    with pytest.raises(ConnectionError, match="pbmc68k_counts.*synthetic_counts"):
        pbmc3k_counts()


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_pbmc3k_processing(monkeypatch):
    counts = sp.csr_matrix(np.array([[1, 0, 0, 2], [3, 0, 0, 1], [0, 0, 5, 1]], dtype=np.float32))
    fake = ad.AnnData(
        counts, var=pd.DataFrame({"gene_ids": ["E1", "E2", "E3", "E4"]}, index=["A", "B", "A", "C"])
    )
    monkeypatch.setattr(sc.datasets, "pbmc3k", lambda: fake)
    adata = pbmc3k_counts(min_cells=2)
    assert list(adata.var_names) == ["A", "C"]
    assert_canonical(adata.X)
    assert (adata.layers["counts"] != adata.X).nnz == 0
    assert pbmc3k_counts(min_cells=0).n_vars == 4
    with pytest.raises(ValueError, match="min_cells"):
        pbmc3k_counts(min_cells=-1)


def test_adapters_loaders_and_physics_do_not_import_torch():
    """Static check: these modules import no torch (the package __init__s are out of scope)."""
    root = Path(sc_sed.__file__).parent
    files = [*root.glob("datasets/*.py"), root / "tl" / "_physics.py"]
    files += [
        root / "data" / f"_{name}.py"
        for name in ("checks", "coo", "images", "interactions", "mudata")
    ]
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "torch" for n in names), path
