import numpy as np
import pytest
from mudata import MuData

import sc_sed

from .conftest import FIT, TINY, tiny_counts


def _mdata():
    a = tiny_counts()
    b = tiny_counts(seed=1)
    b = b[:, :12].copy()
    b.obs_names = a.obs_names
    b.var_names = [f"peak_{i}" for i in range(b.n_vars)]
    md = MuData({"rna": a, "atac": b})
    md.obs["cell_type"] = a.obs["cell_type"].values
    return md


def test_mudata_round_trip():
    md = _mdata()
    sc_sed.SEDModel.setup_mudata(
        md, modalities=["rna", "atac"], layer="counts", labels_key="cell_type"
    )
    model = sc_sed.SEDModel(md, **TINY)
    assert model.module.n_features == 30 + 12
    assert model.max_nonzero_ >= int(np.diff(md["rna"].layers["counts"].indptr).max())
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=32, **FIT)
    synth = model.generate(6, n_steps=3, progress_bar=False)
    assert isinstance(synth, MuData)
    assert list(synth.mod) == ["rna", "atac"]
    assert list(synth["rna"].var_names) == list(md["rna"].var_names)
    assert list(synth["atac"].var_names) == list(md["atac"].var_names)
    assert "cell_type" in synth.obs and synth.obs["synthetic"].all()
    assert synth["atac"].layers["counts"].shape == (6, 12)
    lat = model.get_latent_representation()
    assert lat.shape == (md.n_obs, TINY["n_latent"])


def test_mudata_unknown_modality():
    with pytest.raises(KeyError, match="not found in mdata.mod"):
        sc_sed.SEDModel.setup_mudata(_mdata(), modalities=["prot"])


def test_mudata_rejects_missing_labels_with_count():
    md = _mdata()
    labels = md.obs["cell_type"].astype(object).to_numpy()
    labels[:2] = None
    md.obs["cell_type"] = labels
    with pytest.raises(ValueError, match="2 missing value"):
        sc_sed.SEDModel.setup_mudata(md, layer="counts", labels_key="cell_type")
    with pytest.raises(KeyError, match="not a column"):
        sc_sed.SEDModel.setup_mudata(md, layer="counts", labels_key="no_such_column")


def _ratings(n_users: int, n_items: int, *, values: np.ndarray, seed: int):
    import anndata as ad
    from scipy import sparse

    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < 0.3) * rng.choice(values, (n_users, n_items))
    return ad.AnnData(X=sparse.csr_matrix(X.astype(np.float32)))


def _ratings_mdata():
    movies = _ratings(40, 20, values=np.arange(1, 6), seed=0)  # whole stars
    books = _ratings(40, 10, values=np.arange(2, 11) / 2, seed=1)  # half stars from 1
    books.obs_names = movies.obs_names
    movies.var_names = [f"movie_{i}" for i in range(20)]
    books.var_names = [f"book_{i}" for i in range(10)]
    return MuData({"movies": movies, "books": books})


def test_mudata_value_statistics_are_those_of_the_joint_table():
    from scipy import sparse

    from sc_sed.data._stats import matrix_stats
    from sc_sed.model._mudata import combined_stats

    md = _ratings_mdata()
    sc_sed.SEDModel.setup_mudata(md, modalities=["movies", "books"])
    model = sc_sed.SEDModel(md, **TINY)
    joint = matrix_stats(sparse.hstack([md["movies"].X, md["books"].X]).tocsr()).to_dict()
    stats = combined_stats(model.registry_)
    for key in ("max_abs_value", "median_abs_value", "n_distinct_values"):
        assert stats[key] == joint[key], key
    for key in ("value_vocabulary", "vocabulary_counts", "log_value_histogram"):
        np.testing.assert_array_equal(stats[key], joint[key])
    assert stats["n_distinct_values"] == 9  # union of 1..5 and 1..5 in half stars
    # the ratings are recognised, and an explicit categorical law is accepted
    assert model.value_likelihood_ == "categorical"
    sc_sed.SEDModel.setup_mudata(md, modalities=["movies", "books"])
    explicit = sc_sed.SEDModel(md, value_likelihood="categorical", **TINY)
    assert explicit.value_likelihood_ == "categorical"


def test_mudata_vocabulary_is_dropped_when_the_union_is_too_long():
    from sc_sed.data._stats import MAX_VOCABULARY
    from sc_sed.model._mudata import _value_profile

    def block(values):
        values = np.asarray(values, dtype=np.float64)
        return {
            "max_abs_value": float(values.max()),
            "median_abs_value": float(np.median(values)),
            "n_distinct_values": values.size,
            "value_vocabulary": values,
            "vocabulary_counts": np.ones(values.size, dtype=np.int64),
            "log_value_histogram": np.ones(400, dtype=np.int64),
        }

    half = MAX_VOCABULARY // 2 + 1
    out = _value_profile([block(np.arange(1, half + 1)), block(np.arange(1, half + 1) + half)])
    assert out["n_distinct_values"] > MAX_VOCABULARY and out["value_vocabulary"] is None
    assert out["max_abs_value"] == 2 * half
    older = block([1.0, 2.0]) | {"n_distinct_values": None}
    assert all(v is None for v in _value_profile([block([1.0]), older]).values())
