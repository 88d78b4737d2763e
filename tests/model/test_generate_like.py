"""generate(like=..., strength=...): cells resembling given template rows (SDEdit)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import KNeighborsClassifier

import sc_sed

from .conftest import FIT, TINY

FAST = {"n_steps": 10, "progress_bar": False}


def _lognorm(adata) -> np.ndarray:
    x = sp.csr_matrix(adata.layers["counts"], dtype=np.float64)
    size = np.asarray(x.sum(1)).ravel()
    return np.log1p(x.multiply(100.0 / np.maximum(size, 1)[:, None]).toarray())


@pytest.fixture(scope="module")
def like_setup():
    """A tiny model on well-separated types; held-out template cells; a real-cell classifier."""
    data = sc_sed.datasets.synthetic_counts(
        n_cells=150, n_genes=24, n_types=3, n_markers=8, marker_fold=50.0,
        library_size=80.0, seed=3,
    )  # fmt: skip
    train, templates = data[:110].copy(), data[110:].copy()
    sc_sed.SEDModel.setup_anndata(train, layer="counts", labels_key="cell_type", batch_key="batch")
    model = sc_sed.SEDModel(train, **TINY)
    # the diffusion needs some training: at low strength a cell is its denoiser's estimate
    model.train(max_epochs=20, diffusion_max_epochs=100, batch_size=16, **FIT)
    knn = KNeighborsClassifier(5).fit(_lognorm(train), train.obs["cell_type"].astype(str))
    return model, train, templates, knn


def _assert_contract(out, templates):
    x = out.X
    assert isinstance(x, sp.csr_matrix) and x.dtype == np.float32
    assert list(out.var_names) == list(templates.var_names)
    for r in range(x.shape[0]):
        assert (np.diff(x.indices[x.indptr[r] : x.indptr[r + 1]]) > 0).all()
    assert (x.data >= 1).all() and np.array_equal(x.data, np.round(x.data))
    assert (out.layers["counts"] != x).nnz == 0
    assert out.obs["synthetic"].all()


def _unchanged(before, after):
    assert list(after.obs.columns) == list(before.obs.columns)
    assert after.obs.equals(before.obs) and after.var.equals(before.var)
    assert set(after.uns) == set(before.uns) and set(after.layers) == set(before.layers)
    assert (after.layers["counts"] != before.layers["counts"]).nnz == 0
    assert (after.X != before.X).nnz == 0


def test_like_output_contract(like_setup):
    model, _, templates, _ = like_setup
    before = templates.copy()
    out = model.generate(like=templates, strength=0.3, seed=2, **FAST)
    _unchanged(before, templates)
    _assert_contract(out, templates)
    assert out.n_obs == templates.n_obs
    assert list(out.obs["template"]) == list(templates.obs_names)
    for key in ("cell_type", "batch"):  # the templates' own conditions
        assert list(out.obs[key].astype(str)) == list(templates.obs[key].astype(str))
        assert list(out.obs[key].cat.categories) == list(templates.obs[key].cat.categories)
    uns = out.uns["sc_sed"]
    assert uns["mode"] == "like" and uns["strength"] == 0.3
    assert uns["n_templates"] == templates.n_obs and uns["seed"] == 2


def test_like_keeps_cell_type_at_low_strength(like_setup):
    model, _, templates, knn = like_setup
    out = model.generate(like=templates, strength=0.1, seed=0, **FAST)
    agree = (knn.predict(_lognorm(out)) == out.obs["cell_type"].astype(str)).mean()
    assert agree >= 0.75
    # the check can fail: templates whose labels were permuted keep their own (real) type,
    # so a real-trained classifier disagrees with the labels they carry
    cats = list(templates.obs["cell_type"].cat.categories)
    shifted = templates.copy()
    shifted.obs["cell_type"] = shifted.obs["cell_type"].map(
        {c: cats[(i + 1) % len(cats)] for i, c in enumerate(cats)}
    )
    wrong = model.generate(like=shifted, strength=0.1, seed=0, **FAST)
    assert (knn.predict(_lognorm(wrong)) == wrong.obs["cell_type"].astype(str)).mean() <= 0.3
    # strength moves cells: at 1 they are farther from their templates than at 0.1
    far = model.generate(like=templates, strength=1.0, seed=0, **FAST)
    dist = [np.linalg.norm(_lognorm(o) - _lognorm(templates), axis=1).mean() for o in (out, far)]
    assert dist[0] < dist[1]


def test_like_n_cells_cycles_templates_and_seed_reproducible(like_setup):
    model, _, templates, _ = like_setup
    three = templates[:3]
    kw = {"like": three, "strength": 0.5, "batch_size": 4, **FAST}
    a = model.generate(7, seed=5, **kw)
    names = list(three.obs_names)
    assert list(a.obs["template"]) == [names[k % 3] for k in range(7)]
    b = model.generate(7, seed=5, **kw)
    assert (a.X != b.X).nnz == 0 and a.obs.equals(b.obs)
    assert (a.X != model.generate(7, seed=6, **kw).X).nnz > 0
    ddpm = model.generate(7, seed=5, sampler="ddpm", **kw)
    assert (ddpm.X != model.generate(7, seed=5, sampler="ddpm", **kw).X).nnz == 0


def test_like_labels_override_templates(like_setup):
    model, _, templates, _ = like_setup
    cat = templates.obs["cell_type"].cat.categories[0]
    out = model.generate(like=templates[:5], labels=cat, strength=0.5, **FAST)
    assert (out.obs["cell_type"] == cat).all()
    assert list(out.obs["batch"].astype(str)) == list(templates.obs["batch"][:5].astype(str))


def test_like_streams_to_out_and_shards(like_setup, tmp_path):
    model, _, templates, _ = like_setup
    kw = {"like": templates, "strength": 0.4, "seed": 1, "batch_size": 8, **FAST}
    mem = model.generate(**kw)
    path = model.generate(out=tmp_path / "like.h5ad", **kw)
    back = ad.read_h5ad(path)
    assert (sp.csr_matrix(back.X) != mem.X).nnz == 0
    assert list(back.obs["template"]) == list(mem.obs["template"])
    assert back.uns["sc_sed"]["mode"] == "like"
    parts = [model.generate(shard=(i, 3), **kw) for i in range(3)]
    assert (sp.vstack([p.X for p in parts]) != mem.X).nnz == 0
    assert sum((list(p.obs["template"]) for p in parts), []) == list(mem.obs["template"])


def test_like_bad_input(like_setup):
    model, train, templates, _ = like_setup
    before = templates.copy()
    with pytest.raises(ValueError, match="differ from the training features"):
        model.generate(like=templates[:, ::-1], **FAST)
    with pytest.raises(ValueError, match="differ from the training features"):
        model.generate(like=templates[:, :20], **FAST)
    renamed = templates.copy()
    renamed.var_names = [f"g{i}" for i in range(renamed.n_vars)]
    with pytest.raises(ValueError, match="differ from the training features"):
        model.generate(like=renamed, **FAST)
    with pytest.raises(ValueError, match="0 rows"):
        model.generate(like=templates[:0], **FAST)
    for bad in (0, 0.0, -0.2, 1.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
            model.generate(like=templates, strength=bad, **FAST)
    for bad in ("0.5", True, [0.5]):
        with pytest.raises(TypeError, match="strength must be a number"):
            model.generate(like=templates, strength=bad, **FAST)
    with pytest.raises(TypeError, match="like must be an AnnData"):
        model.generate(like=templates.layers["counts"], **FAST)
    with pytest.raises(ValueError, match="strength applies to generate"):
        model.generate(5, strength=0.5, **FAST)
    unknown = templates.copy()
    unknown.obs["cell_type"] = unknown.obs["cell_type"].cat.add_categories("alien")
    unknown.obs.iloc[0, unknown.obs.columns.get_loc("cell_type")] = "alien"
    with pytest.raises(ValueError, match="not trained on.*alien"):
        model.generate(like=unknown, **FAST)
    no_layer = templates.copy()
    del no_layer.layers["counts"]
    with pytest.raises(KeyError, match="layers"):
        model.generate(like=no_layer, **FAST)
    _unchanged(before, templates)
    assert "_scvi_uuid" not in templates.uns and "_scvi_labels" not in templates.obs
