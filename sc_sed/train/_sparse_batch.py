"""Keep minibatches sparse: CSR rows from scvi-tools' loaders become framed token tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scvi import REGISTRY_KEYS, settings
from scvi.dataloaders import DataSplitter

from sc_sed.data import LongRows, tokens_from_tensor
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY

from ._bucketing import AUTO_BUCKET_PADDING, LengthBucketBatchSampler, padding_factor, row_lengths
from ._distributed import replicas_and_rank


def _only_item(items: list[Any]) -> Any:
    """Collate a batch of one (the minibatch a batch sampler item fetched)."""
    return items[0]


def tokenize_batch(
    batch: dict[str, Any],
    *,
    x_keys: Sequence[str] = (REGISTRY_KEYS.X_KEY,),
    max_nonzero: int | None = None,
    on_long_rows: LongRows = "error",
) -> dict[str, Any]:
    """Replace the data entries of a minibatch by framed (index, value) token tensors.

    Parameters
    ----------
    batch
        A minibatch from :class:`~scvi.dataloaders.AnnDataLoader` (data as sparse CSR
        tensors, or dense when the registered data were dense).
    x_keys
        Registry keys of the data blocks, joined in this order into one feature space
        (one key for AnnData, one per modality for MuData).
    max_nonzero
        Longest allowed row (see :func:`sc_sed.data.tokens_from_csr`).
    on_long_rows
        What to do with longer rows.

    Returns
    -------
    A new dict with ``tokens_index``/``tokens_value`` instead of the data entries.
    """
    out = {k: v for k, v in batch.items() if k not in x_keys}
    blocks = [torch.as_tensor(batch[k]) for k in x_keys]
    tokens = tokens_from_tensor(blocks, max_nonzero=max_nonzero, on_long_rows=on_long_rows)
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
    x_keys
        Registry keys of the data blocks (see :func:`tokenize_batch`).
    max_nonzero
        Longest allowed row.
    on_long_rows
        ``"error"`` or ``"truncate"``.
    bucket_by_length
        Group training rows of similar length into minibatches
        (:class:`~sc_sed.train.LengthBucketBatchSampler`), so little compute goes to
        padding. ``None`` (default) decides from the data: bucketing when random
        minibatches would pad to at least ``AUTO_BUCKET_PADDING`` (1.5) times the real
        tokens (:func:`~sc_sed.train.padding_factor`), e.g. rows of 300 to 3,700 non-zeros.
        Under DDP (``distributed_sampler=True``) every rank yields its own share of the
        same bucketed epoch (``num_replicas`` = world size, ``rank`` = global rank;
        Lightning calls ``set_epoch``), so the trainer must not wrap the sampler again
        (``use_distributed_sampler=False``, which :meth:`~sc_sed.SEDModel.train` sets).
    bucket_pool_batches
        Batches per sorted pool of the bucketing sampler.
    **kwargs
        Passed to :class:`~scvi.dataloaders.DataSplitter` (``train_size``,
        ``validation_size``, ``batch_size``, ``distributed_sampler``, ...).

    Notes
    -----
    Under DDP the validation rows are split too: scvi-tools' loader gives each rank a
    disjoint shard (:class:`~scvi.dataloaders.BatchDistributedSampler`, a few rows
    repeated to make equal shards), as Lightning's own distributed sampler would, and the
    logged validation metrics are averaged over ranks (``sync_dist``).
    """

    def __init__(
        self,
        adata_manager,
        *,
        x_keys: Sequence[str] = (REGISTRY_KEYS.X_KEY,),
        max_nonzero: int | None = None,
        on_long_rows: LongRows = "error",
        bucket_by_length: bool | None = None,
        bucket_pool_batches: int = 16,
        **kwargs,
    ):
        kwargs["load_sparse_tensor"] = True
        super().__init__(adata_manager, **kwargs)
        self.x_keys = tuple(x_keys)
        self.max_nonzero = max_nonzero
        self.on_long_rows = on_long_rows
        self.bucket_by_length = bucket_by_length
        self.bucket_pool_batches = bucket_pool_batches
        # All processes must share one split and one bucketing order: the split is made here
        # (ranks spawned by Lightning get copies of this object), and ranks that build their
        # own splitter (torchrun, strategy="ddp") agree through a fixed seed when none is set.
        seed = settings.seed
        if seed is None and self.data_loader_kwargs.get("distributed_sampler", False):
            seed = 0
        self.split_seed = seed
        self.bucket_seed = 0 if seed is None else int(seed)
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        """Split the rows into training/validation/test, once (later calls keep the split).

        As :meth:`scvi.dataloaders.DataSplitter.setup`, shuffled with ``split_seed``
        (``scvi.settings.seed`` at construction; 0 under DDP when it is None).
        """
        if getattr(self, "train_idx", None) is not None:
            return
        super().setup(stage)
        if (
            self.external_indexing is None
            and self.shuffle_set_split
            and self.split_seed is not None
        ):
            perm = np.random.RandomState(seed=self.split_seed).permutation(
                self.adata_manager.adata.n_obs
            )
            n_val, n_train = self.n_val, self.n_train
            self.val_idx = perm[:n_val]
            self.train_idx = perm[n_val : n_val + n_train]
            self.test_idx = perm[n_val + n_train :]

    def train_dataloader(self):
        """Training loader; minibatches of similar-length rows unless disabled (see above)."""
        kwargs = dict(self.data_loader_kwargs)
        distributed = bool(kwargs.pop("distributed_sampler", False))
        if self.bucket_by_length is False:
            return super().train_dataloader()
        blocks = [self.adata_manager.get_from_registry(k) for k in self.x_keys]
        lengths = row_lengths(blocks)[np.asarray(self.train_idx)]
        batch_size = kwargs.pop("batch_size", None) or settings.batch_size
        if (
            self.bucket_by_length is None
            and padding_factor(lengths, batch_size) < AUTO_BUCKET_PADDING
        ):
            return super().train_dataloader()
        replicas, rank = replicas_and_rank(self.trainer) if distributed else (None, None)
        sampler = LengthBucketBatchSampler(
            lengths,
            batch_size,
            pool_batches=self.bucket_pool_batches,
            drop_last=bool(self.drop_last),
            num_replicas=replicas,
            rank=rank,
            seed=self.bucket_seed,
        )
        return self.data_loader_cls(
            self.adata_manager,
            indices=self.train_idx,
            sampler=sampler,
            # Each sampler item is a whole minibatch: the loader fetches it with one
            # dataset call (a list of rows) and unwraps torch's batch of one.
            batch_size=1,
            collate_fn=_only_item,
            shuffle=False,
            load_sparse_tensor=self.load_sparse_tensor,
            pin_memory=self.pin_memory,
            **kwargs,
        )

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Tokenise the (sparse) ``X`` of a batch on its device."""
        return tokenize_batch(
            batch, x_keys=self.x_keys, max_nonzero=self.max_nonzero, on_long_rows=self.on_long_rows
        )
