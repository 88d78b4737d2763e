"""SEDModel's value likelihood: the auto rule, and training/generating with the bounded laws."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from anndata import AnnData

import sc_sed

from .conftest import FIT, TINY, tiny_counts

GEN = {"n_steps": 4, "enable_progress_bar": False, "seed": 3}
HALF_STARS = np.arange(1, 11) / 2


def _table(values: np.ndarray, n_obs: int = 48, n_vars: int = 20, seed: int = 0) -> AnnData:
    """A sparse table whose non-zeros are ``values`` drawn at random (about 30% density)."""
    rng = np.random.default_rng(seed)
    x = sp.random(n_obs, n_vars, density=0.3, format="csr", random_state=seed)
    x.data = rng.choice(values, size=x.nnz).astype(np.float32)
    x.eliminate_zeros()
    return AnnData(x)


def _heavy_counts(top: float = 1e6, seed: int = 0) -> AnnData:
    """Play-count-like integers: log-uniform from 1 to ``top``, the largest present."""
    rng = np.random.default_rng(seed)
    adata = _table(np.ones(1), seed=seed)
    adata.X.data = np.round(np.exp(rng.uniform(np.log(5.0), np.log(top), adata.X.nnz)))
    adata.X.data[0] = top
    return adata


def _model(adata: AnnData, **kwargs) -> sc_sed.SEDModel:
    sc_sed.SEDModel.setup_anndata(adata)
    return sc_sed.SEDModel(adata, **TINY, **kwargs)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: _table(HALF_STARS), "categorical"),  # half-star ratings
        (lambda: _table(np.arange(1.0, 6.0)), "categorical"),  # integer ratings 1-5
        (lambda: _table(np.ones(1)), "categorical"),  # implicit (binary) interactions
        (_heavy_counts, "logcount"),
        (lambda: _table(np.arange(1.0, 300.0) * 0.37), "lognormal"),
    ],
)
def test_auto_rule_on_small_tables(make, expected):
    assert _model(make()).value_likelihood_ == expected


def test_auto_rule_keeps_ztnb_for_single_cell_counts():
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    assert sc_sed.SEDModel(adata, **TINY).value_likelihood_ == "ztnb"
    pbmc = sc_sed.datasets.pbmc68k_counts()
    sc_sed.SEDModel.setup_anndata(pbmc, layer="counts")
    assert sc_sed.SEDModel(pbmc, **TINY).value_likelihood_ == "ztnb"


def test_user_choice_wins_and_is_checked():
    adata = _table(HALF_STARS)
    assert _model(adata, value_likelihood="lognormal").value_likelihood_ == "lognormal"
    with pytest.raises(ValueError, match="integer counts"):
        _model(_table(HALF_STARS), value_likelihood="logcount")
    many = _table(np.arange(1.0, 2000.0), n_obs=200)
    with pytest.raises(ValueError, match="256 distinct"):
        _model(many, value_likelihood="categorical")
    assert _model(_heavy_counts(), value_likelihood="ztnb").value_likelihood_ == "ztnb"


@pytest.mark.parametrize("values", [HALF_STARS, np.array([1.0, 2.0, 3.0, 4.0, 5.0])])
def test_categorical_model_generates_only_vocabulary_values(values):
    adata = _table(values)
    model = _model(adata)
    assert model.value_likelihood_ == "categorical"
    model.train(max_epochs=2, diffusion_max_epochs=1, batch_size=16, **FIT)
    synth = model.generate(40, **GEN)
    assert synth.X.nnz > 0
    assert np.isin(synth.X.data, values.astype(np.float32)).all()


def test_values_up_to_a_million_train_and_generate_in_range():
    adata = _heavy_counts(1e6)
    model = _model(adata)
    assert model.value_likelihood_ == "logcount"
    bound = float(model.module.decoder.value_head.max_value)
    assert bound == 1e7  # ten times the largest registered value
    model.train(max_epochs=2, diffusion_max_epochs=1, batch_size=16, **FIT)
    assert np.isfinite(model.history_["value_nll_per_pair_train"].to_numpy(dtype=float)).all()
    synth = model.generate(40, **GEN)
    data = synth.X.data
    assert data.size and np.isfinite(data).all()
    assert (data >= 1).all() and (data <= bound).all() and (data == np.round(data)).all()


def test_save_load_keeps_the_vocabulary_and_the_likelihood(tmp_path):
    adata = _table(HALF_STARS)
    model = _model(adata)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=16, **FIT)
    model.save(tmp_path / "m", overwrite=True)
    loaded = sc_sed.SEDModel.load(tmp_path / "m")
    assert loaded.value_likelihood_ == "categorical"
    np.testing.assert_array_equal(
        loaded.module.decoder.value_head.vocabulary.numpy(), HALF_STARS.astype(np.float32)
    )
    a, b = model.generate(20, **GEN), loaded.generate(20, **GEN)
    assert (a.X != b.X).nnz == 0


def test_old_statistics_fall_back_to_the_earlier_rule():
    stats = sc_sed.data.matrix_stats(_table(HALF_STARS).X).to_dict()
    assert sc_sed.SEDModel._resolve_likelihood("auto", stats) == "categorical"
    for key in ("n_distinct_values", "value_vocabulary", "vocabulary_counts"):
        stats.pop(key)
    assert sc_sed.SEDModel._resolve_likelihood("auto", stats) == "lognormal"
