from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from sc_sed.baselines import DenseDDPM, DenseDiffusionModule
from sc_sed.module import LatentDiffusion, SEDModule

GEN = {"n_steps": 5, "progress_bar": False}


@pytest.fixture(scope="module")
def model(adata):
    m = DenseDDPM(adata, layer="counts", labels_key="cell_type", widths=(64, 32), n_embed=32)
    m.train(max_epochs=2, batch_size=32, progress_bar=False, enable_model_summary=False)
    return m


def test_output_like_sed_generate(model, adata):
    out = model.generate(30, seed=0, **GEN)
    assert isinstance(out.X, sp.csr_matrix) and out.X.dtype == np.float32
    assert out.shape == (30, adata.n_vars)
    assert list(out.var_names) == list(adata.var_names)
    assert (out.layers["counts"] != out.X).nnz == 0
    assert isinstance(out.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert list(out.obs["cell_type"].cat.categories) == list(adata.obs["cell_type"].cat.categories)
    assert out.obs["synthetic"].dtype == bool and out.obs["synthetic"].all()
    uns = out.uns["sc_sed"]
    assert uns["model"] == "DenseDDPM" and uns["method"] == "dense_ddpm"
    assert uns["seed"] == 0 and uns["sampler"] == "ddim" and uns["n_steps"] == 5
    assert "version" in uns and "threshold" not in uns


def test_thresholded_zeros_raw_small_values(model):
    raw = model.generate(40, seed=3, **GEN).X.toarray()
    thr_ad = model.generate(40, seed=3, threshold="auto", **GEN)
    thr = thr_ad.X.toarray()
    assert np.all(thr[raw == 0] == 0)  # same samples: thresholding only removes values
    assert np.any((raw > 0) & (thr == 0))  # the raw model writes small spurious non-zeros
    assert (thr == 0).mean() >= (raw == 0).mean()
    kept = thr[thr > 0]
    assert np.all(kept >= 1) and np.array_equal(kept, np.round(kept))  # counts: integers >= 1
    uns = thr_ad.uns["sc_sed"]
    assert uns["method"] == "dense_ddpm_thresholded" and uns["threshold_rule"] == "auto"
    assert uns["threshold"] == model.fit_threshold(n_steps=5)


def test_auto_threshold_reproduces_training_zero_fraction(model, adata):
    n_train = adata.n_obs
    out = model.generate(n_train, seed=0, threshold="auto", **GEN)  # the calibration sample
    zero_fraction = 1 - out.X.nnz / np.prod(out.shape)
    assert zero_fraction == pytest.approx(model.zero_fraction_, abs=0.02)


def test_fixed_threshold(model):
    x = model.generate(20, seed=1, threshold=1.5, **GEN).X
    assert x.nnz == 0 or x.data.min() >= 2  # values < 1.5 dropped, kept ones rounded


def test_labels_honoured(model):
    assert (model.generate(6, "type_1", seed=0, **GEN).obs["cell_type"] == "type_1").all()
    out = model.generate(None, {"type_0": 3, "type_2": 2}, seed=0, **GEN)
    assert out.obs["cell_type"].value_counts().to_dict() == {"type_0": 3, "type_2": 2, "type_1": 0}
    listed = ["type_2", "type_0", "type_1"]
    assert list(model.generate(3, listed, seed=0, **GEN).obs["cell_type"]) == listed


def test_same_seed_same_output(model):
    a = model.generate(10, seed=7, **GEN).X.toarray()
    b = model.generate(10, seed=7, **GEN).X.toarray()
    c = model.generate(10, seed=8, **GEN).X.toarray()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = model.generate(10, seed=7, sampler="ddpm", **GEN).X.toarray()
    np.testing.assert_array_equal(d, model.generate(10, seed=7, sampler="ddpm", **GEN).X.toarray())


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        ({"n_cells": 5, "labels": "type_9"}, ValueError),
        ({"n_cells": 0}, ValueError),
        ({"n_cells": 5, "threshold": "median"}, ValueError),
        ({"n_cells": 5, "threshold": -1.0}, ValueError),
        ({"n_cells": 5, "sampler": "euler"}, ValueError),
        ({"n_cells": 5, "batch_size": 0}, ValueError),
    ],
)
def test_bad_generate_arguments(model, kwargs, err):
    with pytest.raises(err):
        model.generate(**kwargs, **GEN)


def test_unconditional_and_order_errors(adata):
    before = adata.copy()
    m = DenseDDPM(adata, widths=(32, 16), n_embed=16)
    with pytest.raises(RuntimeError, match="train"):
        m.generate(5, **GEN)
    with pytest.raises(RuntimeError, match="train"):
        m.fit_threshold()
    m.train(max_epochs=1, batch_size=50, progress_bar=False, enable_model_summary=False)
    out = m.generate(5, seed=0, **GEN)
    assert list(out.obs.columns) == ["synthetic"] and "counts" not in out.layers
    with pytest.raises(ValueError, match="labels_key"):
        m.generate(5, labels="type_0", **GEN)
    assert (adata.X != before.X).nnz == 0 and list(adata.obs.columns) == list(before.obs.columns)
    assert set(adata.uns) == set(before.uns)


def test_bad_inputs(adata):
    with pytest.raises(KeyError, match="nope"):
        DenseDDPM(adata, labels_key="nope")
    with pytest.raises(KeyError, match="raw"):
        DenseDDPM(adata, layer="raw")
    bad = adata.copy()
    bad.X = -bad.X
    with pytest.raises(ValueError, match="non-negative"):
        DenseDDPM(bad)


def test_module_shares_sed_diffusion_code():
    assert issubclass(DenseDiffusionModule, LatentDiffusion)
    assert isinstance(
        SEDModule(5, 3, n_latent=4, denoiser_widths=(8, 4)).diffusion, LatentDiffusion
    )
    module = DenseDiffusionModule(12, n_cats_per_cond=[3], widths=(16, 8), n_embed=8)
    cond = torch.tensor([[0], [2], [1], [3]])  # 3 is the null category
    loss = module.loss(torch.randn(4, 12), cond)
    loss.backward()
    assert torch.isfinite(loss) and module.denoiser.inp.weight.grad is not None
    g = torch.Generator().manual_seed(0)
    assert module.sample(cond, n_steps=3, guidance=[2.0], generator=g).shape == (4, 12)
    with pytest.raises(ValueError, match="n_features"):
        DenseDiffusionModule(0)
    with pytest.raises(ValueError, match="shape"):
        module.set_feature_stats(np.zeros(3), np.ones(3))
