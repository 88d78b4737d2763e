"""SEDModule with an explicit row-length model: its loss term and a model round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sc_sed
from sc_sed.data import csr_to_tokens
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY, SEDModule


def _module(length: bool) -> SEDModule:
    torch.manual_seed(0)
    return SEDModule(
        n_features=40, max_nonzero=30, n_latent=4, n_hidden=16, n_heads=2, n_ff=16,
        denoiser_widths=(16, 8), length_conditioning=length,
    )  # fmt: skip


def test_loss_adds_the_per_row_length_nll():
    adata = sc_sed.datasets.synthetic_counts(8, 40, seed=0)
    tok = csr_to_tokens(adata.layers["counts"])
    batch = {TOKENS_INDEX_KEY: tok.index, TOKENS_VALUE_KEY: tok.value}
    module = _module(True).eval()
    _, gen, loss = module(batch)
    assert gen["length_nll"].shape == (8,)
    per_row = loss.extra_metrics["length_nll_per_row"]
    torch.testing.assert_close(per_row, gen["length_nll"].mean())
    n_targets = gen["target_mask"].sum()
    tokens = (-gen["index_logp"].sum() + gen["value_nll"].sum()) / n_targets
    kl = module.kl_weight * sum(v.sum() for v in loss.kl_local.values()) / n_targets
    torch.testing.assert_close(loss.loss, tokens + kl + per_row)
    loss.loss.backward()
    assert module.decoder.length_head[0].weight.grad.abs().sum() > 0
    assert module.encoder.head.weight.grad.abs().sum() > 0  # the latent learns the length too
    assert "length_nll_per_row" not in _module(False).eval()(batch)[2].extra_metrics


def test_length_conditioned_model_trains_saves_and_generates(tmp_path):
    adata = sc_sed.datasets.synthetic_counts(60, 40, seed=0)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(
        adata, n_latent=4, n_hidden=16, n_heads=2, n_ff=16, n_layers=1,
        denoiser_widths=(16, 8), length_conditioning=True,
    )  # fmt: skip
    model.train(1, 1, enable_progress_bar=False)
    synth = model.generate(20, seed=3, progress_bar=False)
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    assert loaded.module.decoder.length_conditioning
    again = loaded.generate(20, seed=3, progress_bar=False)
    assert (synth.X != again.X).nnz == 0
    assert np.diff(synth.X.indptr).max() <= model.max_nonzero_


def test_length_conditioning_off_by_default():
    assert not _module(False).decoder.length_conditioning
    with pytest.raises(RuntimeError, match="no length head"):
        _module(False).decoder.sample_lengths(torch.zeros(2, 4), 5)
