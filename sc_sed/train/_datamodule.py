"""Train SED from a user's LightningDataModule (e.g. scvi-tools' ``TileDBDataModule``).

scvi-tools 1.4 models train from any :class:`~lightning.pytorch.LightningDataModule` whose
minibatches are dicts keyed like its registry: ``"X"`` a dense ``(rows, n_vars)`` tensor,
``"labels"``/``"batch"`` ``(rows, 1)`` integer codes (scvi-tools'
:class:`~scvi.dataloaders.TileDBDataModule` for TileDB-SOMA experiments makes them in its
``on_before_batch_transfer`` hook). This module turns such minibatches into SED's token
batches on the fly and streams over them for the set-up statistics and the encoder means;
nothing here holds more than one minibatch of data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import scipy.sparse as sp
import torch
from scvi import REGISTRY_KEYS

from ._sparse_batch import tokenize_batch

STAGES = ("train", "val")


@dataclass(frozen=True)
class ValueRules:
    """What the values of a minibatch must satisfy for the model being trained.

    Attributes
    ----------
    n_vars
        Features per row.
    nonnegative
        Negative values are an error (every likelihood except ``"gaussian"``).
    integer
        Non-integer values are an error (``"ztnb"``, ``"ztpoisson"``).
    """

    n_vars: int
    nonnegative: bool = True
    integer: bool = False


def _describe_keys(batch: Any) -> str:
    if isinstance(batch, Mapping):
        return f"a dict with keys {sorted(map(str, batch))}"
    return f"a {type(batch).__name__}"


def data_block(batch: Any, x_key: str = REGISTRY_KEYS.X_KEY) -> torch.Tensor:
    """Return the ``(rows, n_vars)`` data tensor of a data-module minibatch, or raise.

    Parameters
    ----------
    batch
        The minibatch, after the data module's batch-transfer hooks.
    x_key
        Key of the data.

    Returns
    -------
    The tensor (dense or sparse).
    """
    x = batch.get(x_key) if isinstance(batch, Mapping) else None
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        msg = (
            f"SED needs data-module minibatches that are dicts with a 2-D tensor under "
            f"{x_key!r} (rows × features), as scvi-tools' data modules yield; got "
            f"{_describe_keys(batch)}. Return such a dict from the data module's "
            "`on_before_batch_transfer` (see scvi.dataloaders.TileDBDataModule)."
        )
        raise ValueError(msg)
    return x


def condition_block(batch: Mapping[str, Any], key: str, n_cats: int) -> torch.Tensor:
    """Return the ``(rows,)`` integer codes under ``key``, or raise when absent or out of range.

    Parameters
    ----------
    batch
        The minibatch (a dict).
    key
        Its key, e.g. ``"labels"``.
    n_cats
        Number of categories: codes must lie in ``[0, n_cats)``.

    Returns
    -------
    Long tensor of codes.
    """
    codes = batch.get(key)
    rows = batch[REGISTRY_KEYS.X_KEY].shape[0]
    if not isinstance(codes, torch.Tensor) or codes.numel() != rows:
        msg = (
            f"The model is conditioned on {key!r}, but a minibatch has no {key!r} codes "
            f"(one per row; got {None if codes is None else tuple(codes.shape)}). Make the "
            f"data module yield them, or set up without that condition (conditions={{}})."
        )
        raise ValueError(msg)
    codes = codes.reshape(-1)
    if codes.is_floating_point() and not torch.equal(codes, codes.round()):
        msg = f"The {key!r} codes of a minibatch are not integers; yield category codes."
        raise ValueError(msg)
    codes = codes.long()
    if rows and (codes.min() < 0 or codes.max() >= n_cats):
        msg = (
            f"A minibatch has {key!r} codes from {int(codes.min())} to {int(codes.max())}, "
            f"but there are {n_cats} categories; codes must lie in [0, {n_cats})."
        )
        raise ValueError(msg)
    return codes


def check_values(x: torch.Tensor, rules: ValueRules) -> None:
    """Raise a ValueError when a minibatch's data break ``rules`` (shape, NaN, sign, integers).

    Parameters
    ----------
    x
        ``(rows, n_vars)`` data tensor.
    rules
        The :class:`ValueRules` of the model.
    """
    if x.shape[1] != rules.n_vars:
        msg = (
            f"A minibatch has {x.shape[1]} features; the model was set up with {rules.n_vars}. "
            "Train with the data module the model was set up from (same features)."
        )
        raise ValueError(msg)
    if x.layout == torch.sparse_csr:
        values = x.values()
    elif x.is_sparse:
        values = x.coalesce().values()
    else:  # one pass over the dense block; the checks then read only the non-zeros
        values = x[x != 0]  # NaN != 0, so NaNs are kept
    if not torch.isfinite(values).all():
        msg = "A minibatch contains NaN or infinite values; SED needs finite values."
        raise ValueError(msg)
    if rules.nonnegative and (values < 0).any():
        msg = (
            "A minibatch contains negative values, which the model's likelihood cannot "
            "model; stream raw counts, or set the model up with value_likelihood='gaussian'."
        )
        raise ValueError(msg)
    if rules.integer and not torch.equal(values, values.round()):
        msg = (
            "A minibatch contains non-integer values but the model's likelihood needs "
            "counts; stream raw counts, or use value_likelihood='lognormal'."
        )
        raise ValueError(msg)


def to_scipy(x: torch.Tensor) -> np.ndarray | sp.csr_matrix:
    """Return a data tensor on the CPU as a NumPy array (dense) or SciPy CSR matrix (sparse)."""
    x = x.detach().cpu()
    if x.layout == torch.sparse_csr:
        return sp.csr_matrix(
            (x.values().numpy(), x.col_indices().numpy(), x.crow_indices().numpy()),
            shape=tuple(x.shape),
        )
    return (x.to_dense() if x.is_sparse else x).numpy()


def _loader(datamodule: pl.LightningDataModule, stage: str):
    loader = getattr(datamodule, f"{stage}_dataloader")()
    return None if loader is None or loader == [] else loader


def stream_batches(
    datamodule: pl.LightningDataModule,
    stages: Sequence[str] = STAGES,
    device: torch.device | str = "cpu",
) -> Iterator[Any]:
    """Iterate over a data module's minibatches as its model sees them.

    Calls ``datamodule.setup("fit")``, then for each stage's loader applies the module's
    ``on_before_batch_transfer``, ``transfer_batch_to_device`` and
    ``on_after_batch_transfer`` hooks, as Lightning does during training.

    Parameters
    ----------
    datamodule
        The data module.
    stages
        Loaders to read: ``"train"`` and/or ``"val"`` (absent or empty ones are skipped).
    device
        Device the minibatches are moved to.

    Yields
    ------
    Each minibatch (a dict for scvi-tools' data modules).
    """
    datamodule.setup("fit")
    device = torch.device(device)
    for stage in stages:
        loader = _loader(datamodule, stage) if stage in STAGES else None
        for batch in loader or ():
            batch = datamodule.on_before_batch_transfer(batch, 0)
            batch = datamodule.transfer_batch_to_device(batch, device, 0)
            yield datamodule.on_after_batch_transfer(batch, 0)


class TokenizingDataModule(pl.LightningDataModule):
    """Wrap a user's data module so that its minibatches reach SED as token batches.

    The wrapped module's loaders and batch hooks run unchanged; after them, each
    minibatch's data are checked (:func:`check_values`) and replaced by framed
    ``(index, value)`` tokens of its non-zero entries (:func:`tokenize_batch`).

    Parameters
    ----------
    datamodule
        The user's data module (minibatch dicts with ``"X"``).
    rules
        :class:`ValueRules` the data must satisfy.
    max_nonzero
        Longest allowed row.
    on_long_rows
        ``"error"`` or ``"truncate"`` for longer rows.
    """

    def __init__(
        self,
        datamodule: pl.LightningDataModule,
        rules: ValueRules,
        *,
        max_nonzero: int | None = None,
        on_long_rows: str = "error",
    ):
        super().__init__()
        self.datamodule = datamodule
        self.rules = rules
        self.max_nonzero = max_nonzero
        self.on_long_rows = on_long_rows
        for name in ("n_train", "n_val"):
            if hasattr(datamodule, name):
                setattr(self, name, getattr(datamodule, name))

    def prepare_data(self) -> None:
        """Run the wrapped module's ``prepare_data``."""
        self.datamodule.prepare_data()

    def setup(self, stage: str) -> None:
        """Set up the wrapped module."""
        self.datamodule.setup(stage)

    def teardown(self, stage: str) -> None:
        """Tear the wrapped module down."""
        self.datamodule.teardown(stage)

    def train_dataloader(self):
        """Return the wrapped module's training loader."""
        return self.datamodule.train_dataloader()

    def val_dataloader(self):
        """Return the wrapped module's validation loader (an empty list when it has none)."""
        return _loader(self.datamodule, "val") or []

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Run the wrapped module's hook."""
        return self.datamodule.on_before_batch_transfer(batch, dataloader_idx)

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Run the wrapped module's hook."""
        return self.datamodule.transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> dict[str, Any]:
        """Run the wrapped module's hook, then :meth:`tokenize`."""
        return self.tokenize(self.datamodule.on_after_batch_transfer(batch, dataloader_idx))

    def tokenize(self, batch: Any) -> dict[str, Any]:
        """Check a minibatch's data and replace them by tokens.

        Other per-row tensors (e.g. label codes) are kept after the tokens; entries that
        are not one per row (None, scvi-tools' empty placeholders) are dropped, so that
        Lightning infers the minibatch size from the tokens when it logs.

        Parameters
        ----------
        batch
            A minibatch after the wrapped module's hooks.

        Returns
        -------
        The token batch.
        """
        x = data_block(batch)
        check_values(x, self.rules)
        rows = x.shape[0]
        tokens = tokenize_batch(
            {REGISTRY_KEYS.X_KEY: x}, max_nonzero=self.max_nonzero, on_long_rows=self.on_long_rows
        )
        per_row = {
            k: v
            for k, v in batch.items()
            if k != REGISTRY_KEYS.X_KEY
            and isinstance(v, torch.Tensor)
            and v.dim() > 0
            and v.shape[0] == rows
        }
        return {**tokens, **per_row}
