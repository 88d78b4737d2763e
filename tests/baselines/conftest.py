"""Fixtures for the baseline tests: tiny counts and briefly trained models (shared per module)."""

from __future__ import annotations

import pytest
import torch

import sc_sed


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest (and steadiest on a shared CPU) with one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def adata():
    """100 cells × 40 genes of integer counts with 3 cell types."""
    return sc_sed.datasets.synthetic_counts(n_cells=100, n_genes=40, n_markers=5, n_types=3, seed=0)
