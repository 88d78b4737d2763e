"""Lightning data module over precomputed (latent, condition) pairs for diffusion training."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset


class LatentDataModule(pl.LightningDataModule):
    """Train/validation loaders over standardised latents and their condition codes.

    Parameters
    ----------
    z
        ``(n, n_latent)`` standardised latents.
    cond
        ``(n, n_conds)`` long condition codes.
    train_idx
        Dataset rows (of the model's AnnData) the latents come from, recorded for
        scvi-tools' bookkeeping.
    validation_size
        Fraction of rows held out for validation (0 for none).
    batch_size
        Minibatch size.
    seed
        Seed of the split.
    min_batches_per_epoch
        Small datasets are repeated so that an epoch has at least this many minibatches
        (diffusion needs many cheap steps; this keeps per-epoch overhead small).
    """

    def __init__(
        self,
        z: torch.Tensor,
        cond: torch.Tensor,
        train_idx: np.ndarray,
        *,
        validation_size: float = 0.0,
        batch_size: int = 256,
        seed: int = 0,
        min_batches_per_epoch: int = 32,
    ):
        super().__init__()
        n = z.shape[0]
        perm = np.random.default_rng(seed).permutation(n)
        n_val = int(round(validation_size * n))
        self._val_rows, self._train_rows = perm[:n_val], perm[n_val:]
        self.z, self.cond = z, cond
        self.train_idx = np.asarray(train_idx)[self._train_rows]
        self.val_idx = np.asarray(train_idx)[self._val_rows]
        self.test_idx = np.array([], dtype=int)
        self.n_train, self.n_val = len(self._train_rows), n_val
        self.batch_size = batch_size
        self.repeats = max(1, math.ceil(min_batches_per_epoch * batch_size / max(1, self.n_train)))

    def _loader(self, rows: np.ndarray, shuffle: bool) -> DataLoader:
        rows = torch.as_tensor(rows, dtype=torch.long)
        data = TensorDataset(self.z[rows], self.cond[rows])
        drop_last = shuffle and len(rows) > self.batch_size
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, drop_last=drop_last)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training latents (repeated ``self.repeats`` times per epoch)."""
        return self._loader(np.tile(self._train_rows, self.repeats), shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Return the validation latents (an empty list when there are none)."""
        return self._loader(self._val_rows, shuffle=False) if self.n_val else []
