"""Fit the encoder's principal components on the training rows, once, before training."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from sc_sed.data import pairs_to_csr, sparse_pca
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY
from sc_sed.train import stream_batches

if TYPE_CHECKING:
    from lightning.pytorch import LightningDataModule

logger = logging.getLogger(__name__)

#: Rows (at most) the components are fitted on; a random subset of larger data.
PCA_MAX_ROWS = 10_000


def _transformed_rows(spectral, batches: Iterable[dict], max_rows: int) -> sp.csr_matrix:
    """CSR of the transformed values of the first ``max_rows`` rows of token ``batches``."""
    blocks, n = [], 0
    for batch in batches:
        index, value = batch[TOKENS_INDEX_KEY].cpu(), batch[TOKENS_VALUE_KEY].cpu()
        mask = (index >= 0) & (index < spectral.loadings.shape[0])
        t = spectral.transform_values(value, mask)
        blocks.append(pairs_to_csr(torch.where(mask, index, -1), t, spectral.loadings.shape[0]))
        n += blocks[-1].shape[0]
        if n >= max_rows:
            break
    return sp.vstack(blocks, format="csr")[:max_rows] if blocks else sp.csr_matrix((0, 0))


def fit_encoder_pcs(
    model,
    datamodule: LightningDataModule | None = None,
    *,
    max_rows: int = PCA_MAX_ROWS,
    seed: int = 0,
) -> bool:
    """Fit the encoder's :class:`~sc_sed.nn.SpectralFeatures` unless done (or absent).

    Reads up to ``max_rows`` registered rows (a seeded random subset of the AnnData's
    rows, or the first minibatches of a data module's training loader), transforms their
    values as the encoder does and stores their leading principal components
    (:func:`~sc_sed.data.sparse_pca`). This runs before Lightning wraps the module, so
    under DDP, where each process may read other rows, DDP's start-up broadcast of rank
    0's buffers makes every process use rank 0's components.

    Parameters
    ----------
    model
        The :class:`~sc_sed.SEDModel`.
    datamodule
        The data module the model trains from (None: its AnnData).
    max_rows
        Most rows to fit on.
    seed
        Seed of the row subset and of the randomised SVD.

    Returns
    -------
    Whether components were fitted now.
    """
    spectral = model.module.encoder.spectral
    if spectral is None or bool(spectral.fitted):
        return False
    if datamodule is not None:
        adapter = model._tokenizing_datamodule(datamodule)
        batches = (adapter.tokenize(b) for b in stream_batches(datamodule, stages=("train",)))
    else:
        n_obs = model.adata.n_obs
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n_obs, min(n_obs, max_rows), replace=False))
        batches = model._token_batches(None, rows, 256)
    x = _transformed_rows(spectral, batches, max_rows)
    n_components = min(spectral.n_components, min(x.shape) - 1)
    if n_components < spectral.n_components:
        msg = (
            f"The encoder's {spectral.n_components} principal components need at least "
            f"{spectral.n_components + 1} rows; got {x.shape[0]}. Pass a smaller n_encoder_pcs."
        )
        raise ValueError(msg)
    loadings, mean, sd = sparse_pca(x, n_components, seed=seed)
    spectral.set_components(loadings, mean, sd)
    logger.info("Fitted %d principal components for the encoder on %d rows.", n_components, x.shape[0])
    return True
