from __future__ import annotations

import pytest

import sc_sed

TINY = {
    "n_latent": 8,
    "n_hidden": 32,
    "n_layers": 1,
    "n_heads": 2,
    "n_ff": 64,
    "dropout_rate": 0.0,
    "denoiser_widths": (64, 32),
}
FIT = {"enable_progress_bar": False}


def tiny_counts(n_cells: int = 60, seed: int = 0):
    return sc_sed.datasets.synthetic_counts(
        n_cells=n_cells, n_genes=30, n_types=3, n_markers=4, seed=seed, library_size=60.0
    )


@pytest.fixture(scope="package")
def trained():
    """A tiny conditional model trained for a few steps (shared: training is the slow part)."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type", batch_key="batch")
    model = sc_sed.SEDModel(adata, **TINY)
    model.train(max_epochs=3, diffusion_max_epochs=3, batch_size=32, **FIT)
    return model, adata
