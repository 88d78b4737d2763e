"""Bad arguments fail up front with a clear message, and the user's AnnData stays unchanged."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

import sc_sed

from .conftest import FIT, TINY, tiny_counts

KW = {"n_steps": 2, "progress_bar": False}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_cells": 2.5}, TypeError, "n_cells"),
        ({"n_cells": "10"}, TypeError, "n_cells"),
        ({"n_cells": True}, TypeError, "n_cells"),
        ({"n_cells": 0}, ValueError, "n_cells"),
        ({"n_cells": 10**13}, ValueError, "out="),
        ({"n_cells": None, "labels": {"type_0": -1}}, ValueError, "non-negative integers"),
        ({"n_cells": None, "labels": {"type_0": 2.5}}, ValueError, "non-negative integers"),
        ({"guidance_scale": float("nan")}, ValueError, "guidance_scale"),
        ({"guidance_scale": float("inf")}, ValueError, "guidance_scale"),
        ({"guidance_scale": -1.0}, ValueError, "guidance_scale"),
        ({"guidance_scale": "high"}, TypeError, "guidance_scale"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, ValueError, "seed"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"sampler": "euler"}, ValueError, "sampler"),
    ],
)
def test_generate_rejects_bad_arguments(trained, kwargs, error, match):
    model, _ = trained
    args = {"n_cells": 4, **KW, **kwargs}
    with pytest.raises(error, match=match):
        model.generate(**args)


def test_guidance_on_unconditional_model_is_ignored_with_a_warning(caplog):
    adata = tiny_counts(n_cells=20)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=32, **FIT)
    with caplog.at_level(logging.WARNING):
        model.generate(2, guidance_scale=3.0, **KW)
    assert "guidance_scale is ignored" in caplog.text


def test_nan_latent_statistics_refuse_to_generate(trained, monkeypatch):
    model, _ = trained
    std = model.module.diffusion.latent_std
    monkeypatch.setattr(model.module.diffusion, "latent_std", torch_full_nan(std))
    with pytest.raises(RuntimeError, match="fewer than 2 rows"):
        model.generate(2, **KW)


def torch_full_nan(t):
    import torch

    return torch.full_like(t, float("nan"))


def test_setup_rejects_missing_labels_with_count():
    adata = tiny_counts()
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(object)
    adata.obs.iloc[:3, adata.obs.columns.get_loc("cell_type")] = np.nan
    before = adata.obs.copy()
    with pytest.raises(ValueError, match="3 missing value"):
        sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    assert adata.obs.equals(before)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: a[:1].copy(), "at least 2 rows"),
        (lambda a: _dup_names(a), "duplicates"),
        (lambda a: _zeros(a), "all zeros"),
    ],
)
def test_setup_rejects_degenerate_data(change, match):
    adata = change(tiny_counts())
    with pytest.raises(ValueError, match=match):
        sc_sed.SEDModel.setup_anndata(adata, layer="counts")


def _dup_names(a):
    a.var_names = ["g"] * a.n_vars
    return a


def _zeros(a):
    a.layers["counts"] = sp.csr_matrix(a.shape, dtype=np.float32)
    return a


def test_reconstruct_and_latents_reject_other_features_and_empty_indices(trained):
    model, adata = trained
    other = adata.copy()
    other.var_names = list(reversed(adata.var_names))
    with pytest.raises(ValueError, match="differ from the training features"):
        model.reconstruct(other)
    with pytest.raises(ValueError, match="differ from the training features"):
        model.get_latent_representation(other)
    with pytest.raises(ValueError, match="non-empty"):
        model.reconstruct(indices=[])
    with pytest.raises(ValueError, match="non-empty"):
        model.get_latent_representation(indices=np.array([], dtype=int))
    with pytest.raises(ValueError, match="lie in"):
        model.get_latent_representation(indices=[adata.n_obs])


def test_transfer_keeps_training_statistics_without_recomputing(trained, monkeypatch):
    from sc_sed.model import _fields

    model, adata = trained
    calls = []
    monkeypatch.setattr(_fields, "check_matrix", lambda *a, **k: calls.append(1))
    new = adata[:10].copy()
    latents = model.get_latent_representation(new)
    assert latents.shape[0] == 10 and calls == []
