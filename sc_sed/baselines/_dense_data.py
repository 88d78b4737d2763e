"""Minibatches of standardised dense rows made on the fly from a sparse matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader, Dataset


class StandardisedRows(Dataset):
    """Rows of a sparse matrix, densified and standardised one minibatch at a time.

    Only ``(batch, D)`` dense arrays ever exist; the training matrix stays sparse.
    ``__getitems__`` returns a whole minibatch ``(x, codes)`` at once.

    Parameters
    ----------
    x
        ``(n, D)`` CSR matrix (log-normalised values).
    mean, std
        ``(D,)`` per-feature statistics used for standardisation.
    codes
        ``(n, n_conds)`` integer condition codes.
    """

    def __init__(self, x: sp.csr_matrix, mean: np.ndarray, std: np.ndarray, codes: np.ndarray):
        self.x = x
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.codes = torch.as_tensor(np.asarray(codes, dtype=np.int64))

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitems__(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        dense = (self.x[rows].toarray() - self.mean) / self.std
        return torch.from_numpy(dense.astype(np.float32, copy=False)), self.codes[rows]

    def __getitem__(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, codes = self.__getitems__([row])
        return x[0], codes[0]


def _keep_batch(batch):
    return batch


def standardised_loader(data: StandardisedRows, *, batch_size: int, seed: int = 0) -> DataLoader:
    """Shuffled minibatch loader over :class:`StandardisedRows`.

    The last partial batch is dropped when there is more than one batch.
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(data) > batch_size,
        collate_fn=_keep_batch,
        generator=generator,
    )
