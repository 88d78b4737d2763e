import numpy as np
import pytest

import sc_sed

from .conftest import tiny_counts


@pytest.mark.parametrize("head", ["flat", "factorised"])
def test_tiny_model_overfits_a_handful_of_rows(head):
    adata = tiny_counts(n_cells=8)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(
        adata, n_latent=16, n_hidden=32, n_layers=1, n_heads=2, n_ff=64, dropout_rate=0.0,
        index_head=head, block_size=6, denoiser_widths=(32, 16),
    )  # fmt: skip
    model.train_autoencoder(
        max_epochs=400, train_size=1.0, batch_size=8, enable_progress_bar=False,
        plan_kwargs={"lr": 3e-3, "warmup_steps": 10},
    )  # fmt: skip
    rec = model.reconstruct(greedy=True)
    real = adata.layers["counts"] > 0
    hit = real.multiply(rec.X > 0).sum()
    assert hit / real.sum() > 0.9  # recall of the non-zero indices
    assert hit / (rec.X > 0).sum() > 0.8  # precision (free-running decoding adds a few)
    assert np.array_equal(rec.X.data, np.round(rec.X.data))
