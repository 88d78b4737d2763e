"""Shared test configuration: headless plotting, small thread pools, seeded RNGs."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded NumPy generator."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run fastest on one thread (and do not fight over CI's 2 cores)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A saved tiny conditional model (trained for one epoch per stage) for CLI tests."""
    import sc_sed

    from .model.conftest import FIT, TINY, tiny_counts

    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=32, **FIT)
    path = tmp_path_factory.mktemp("cli") / "model"
    model.save(path)
    return path
