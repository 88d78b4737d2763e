"""Keep minibatches sparse: CSR rows from scvi-tools' loaders become framed token tensors."""

from __future__ import annotations

from typing import Any

import torch
from scvi import REGISTRY_KEYS
from scvi.dataloaders import DataSplitter

from sc_sed.data import tokens_from_tensor
from sc_sed.data._tokens import LongRows
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY


def tokenize_batch(
    batch: dict[str, Any],
    *,
    max_nonzero: int | None = None,
    on_long_rows: LongRows = "error",
) -> dict[str, Any]:
    """Replace the ``X`` entry of a minibatch by framed (index, value) token tensors.

    Parameters
    ----------
    batch
        A minibatch from :class:`~scvi.dataloaders.AnnDataLoader` (``X`` as a sparse CSR
        tensor, or dense when the registered data were dense).
    max_nonzero
        Longest allowed row (see :func:`sc_sed.data.tokens_from_csr`).
    on_long_rows
        What to do with longer rows.

    Returns
    -------
    A new dict with ``tokens_index``/``tokens_value`` instead of ``X``.
    """
    out = {k: v for k, v in batch.items() if k != REGISTRY_KEYS.X_KEY}
    x = batch[REGISTRY_KEYS.X_KEY]
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    tokens = tokens_from_tensor(x, max_nonzero=max_nonzero, on_long_rows=on_long_rows)
    out[TOKENS_INDEX_KEY] = tokens.index
    out[TOKENS_VALUE_KEY] = tokens.value
    return out


class SparseDataSplitter(DataSplitter):
    """A :class:`~scvi.dataloaders.DataSplitter` whose batches stay sparse.

    Rows are loaded as sparse CSR tensors, moved to the device as such, and turned into
    framed token tensors there; the parent's densifying ``on_after_batch_transfer`` never
    runs, so no ``(batch, n_features)`` tensor is made for sparse data.

    Parameters
    ----------
    adata_manager
        The model's :class:`~scvi.data.AnnDataManager`.
    max_nonzero
        Longest allowed row.
    on_long_rows
        ``"error"`` or ``"truncate"``.
    **kwargs
        Passed to :class:`~scvi.dataloaders.DataSplitter` (``train_size``,
        ``validation_size``, ``batch_size``, ``distributed_sampler``, ...).
    """

    def __init__(
        self,
        adata_manager,
        *,
        max_nonzero: int | None = None,
        on_long_rows: LongRows = "error",
        **kwargs,
    ):
        kwargs["load_sparse_tensor"] = True
        super().__init__(adata_manager, **kwargs)
        self.max_nonzero = max_nonzero
        self.on_long_rows = on_long_rows

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Tokenise the (sparse) ``X`` of a batch on its device."""
        return tokenize_batch(batch, max_nonzero=self.max_nonzero, on_long_rows=self.on_long_rows)
