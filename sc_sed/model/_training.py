"""Training of SEDModel: the autoencoder stage, then the latent-diffusion stage."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import scvi
import torch

from sc_sed._defaults import autoencoder_epochs, diffusion_epochs
from sc_sed._defaults import batch_size as recipe_batch_size
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY
from sc_sed.train import (
    AutoencoderTrainingPlan,
    DiffusionTrainingPlan,
    LatentDataModule,
    LatentStageTrainRunner,
    SparseDataSplitter,
    StageTrainRunner,
    TokenizingDataModule,
    ValueRules,
    condition_block,
    stream_batches,
    uses_distributed_sampler,
)

from ._conditions import condition_codes
from ._datamodule import SETUP_METHOD_NAME
from ._pcs import fit_encoder_pcs

if TYPE_CHECKING:
    from lightning.pytorch import LightningDataModule

logger = logging.getLogger(__name__)

#: Default early stopping of the diffusion stage: epochs (of at least 32 minibatches)
#: without an improvement of the held-out diffusion loss by ``min_delta`` before stopping.
DIFFUSION_EARLY_STOPPING = {"early_stopping_patience": 10, "early_stopping_min_delta": 1e-3}
#: Fraction of the latents held out to decide when the diffusion stage stops.
DIFFUSION_VALIDATION_SIZE = 0.1


def _steps_per_epoch(datamodule: LightningDataModule) -> int:
    """Minibatches in one epoch of a data module's training loader (counted if it has no len)."""
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    try:
        return max(1, len(loader))
    except TypeError:
        return max(1, sum(1 for _ in loader))


def _check_epochs(value: int | None, name: str) -> None:
    if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
        msg = f"{name} must be None or a non-negative integer, got {value!r}."
        raise ValueError(msg)


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run with ``scvi.settings.seed = seed``; afterwards restore the caller's seed and RNGs."""
    if seed is None:
        yield
        return
    previous = scvi.settings.seed
    # the legacy global NumPy state is what seed_everything seeds, so it is what we restore
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            scvi.settings.seed = seed
            yield
        finally:
            scvi.settings.seed = previous  # None does not reseed; an int reseeds, undone below
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002


def _fresh_parameters(module_cls: type, module_kwargs: dict, seed: int) -> dict:
    """Parameters of a new ``module_cls(**module_kwargs)`` drawn from ``seed`` (CPU RNG only)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = module_cls(**module_kwargs)
    return dict(fresh.named_parameters())


class TrainingMixin:
    """Two-stage training of :class:`~sc_sed.SEDModel` (autoencoder, then latent diffusion).

    Like scvi-tools' ``UnsupervisedTrainingMixin``, subclasses can swap the classes each
    stage is built from: ``_data_splitter_cls``, ``_training_plan_cls`` and
    ``_train_runner_cls`` for the autoencoder, ``_diffusion_data_cls``,
    ``_diffusion_training_plan_cls`` and ``_diffusion_train_runner_cls`` for the diffusion.
    """

    _data_splitter_cls = SparseDataSplitter
    _training_plan_cls = AutoencoderTrainingPlan
    _train_runner_cls = StageTrainRunner
    _diffusion_data_cls = LatentDataModule
    _diffusion_training_plan_cls = DiffusionTrainingPlan
    _diffusion_train_runner_cls = LatentStageTrainRunner

    # -- training --------------------------------------------------------------------------
    def train(
        self,
        max_epochs: int | None = None,
        diffusion_max_epochs: int | None = None,
        *,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = 0.9,
        validation_size: float | None = None,
        shuffle_set_split: bool = True,
        batch_size: int | None = None,
        diffusion_batch_size: int = 256,
        early_stopping: bool = False,
        diffusion_early_stopping: bool | None = None,
        seed: int | None = None,
        plan_kwargs: dict | None = None,
        diffusion_plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        datamodule: LightningDataModule | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train both stages: the autoencoder, then the latent diffusion on its frozen means.

        Parameters
        ----------
        max_epochs
            Autoencoder epochs (default: the model's recipe, :data:`~sc_sed.model.PRESETS`:
            about 1,000 optimiser steps on a CPU, 3,000 on a GPU, at most 400 epochs).
            0 trains nothing (and then the diffusion cannot be trained: a ValueError).
        diffusion_max_epochs
            Diffusion epochs, or their cap when the diffusion stops early (default: the
            recipe's, about 6,000 optimiser steps, 3,200 on a CPU below 1,000 training
            rows). Small datasets are repeated so that a diffusion epoch has at least 32
            minibatches.
        accelerator, devices
            Passed to Lightning (``"auto"`` picks a GPU when there is one).
        train_size, validation_size, shuffle_set_split
            Split of the registered rows for the autoencoder (the diffusion trains on the
            autoencoder's training rows).
        batch_size
            Autoencoder minibatch size (default: the recipe's, 16 on a CPU, 32 on a GPU).
        diffusion_batch_size
            Diffusion minibatch size.
        early_stopping
            Stop the autoencoder when its validation loss stops improving (needs a
            validation split; see ``early_stopping_patience`` etc. in ``trainer_kwargs``).
        diffusion_early_stopping
            Stop the diffusion when its loss on 10% held-out latents stops improving
            (patience 10 epochs, ``min_delta`` 1e-3; see :meth:`train_diffusion`). None
            (default): as ``early_stopping``. Off by default because the held-out loss
            plateaus while the generated rows still improve (``benchmarks/README.md``).
        seed
            Seed for the initial weights (drawn again from it while the autoencoder is
            untrained), the data split, minibatch order and training noise (through
            ``scvi.settings.seed``, which seeds Python, NumPy and torch); the caller's
            ``scvi.settings.seed`` and global random states are restored afterwards.
            The same seed gives bit-identical weights on a CPU with the same thread
            count; on a GPU some kernels (e.g. scatter-adds, cuBLAS/cuDNN choices) are
            not deterministic unless ``torch.use_deterministic_algorithms(True)`` is set,
            so weights may differ in the last bits. None uses the current global state.
        plan_kwargs
            Keyword arguments of :class:`~sc_sed.train.AutoencoderTrainingPlan`.
        diffusion_plan_kwargs
            Keyword arguments of :class:`~sc_sed.train.DiffusionTrainingPlan`.
        datasplitter_kwargs
            Keyword arguments of :class:`~sc_sed.train.SparseDataSplitter`.
        datamodule
            A :class:`~lightning.pytorch.LightningDataModule` to train from instead of the
            AnnData (e.g. :class:`scvi.dataloaders.TileDBDataModule`), for a model built
            from :meth:`setup_datamodule`'s registry. Its loaders and split are used as
            they are (``train_size``, ``validation_size``, ``shuffle_set_split``,
            ``batch_size`` and ``datasplitter_kwargs`` do not apply); the diffusion
            trains on the encoder means of its training loader's rows.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`/Lightning (e.g. ``strategy="ddp"``,
            ``precision="bf16-mixed"``, ``enable_progress_bar=False``).
        """
        _check_epochs(max_epochs, "max_epochs")
        _check_epochs(diffusion_max_epochs, "diffusion_max_epochs")
        if diffusion_early_stopping is None:
            diffusion_early_stopping = early_stopping
        common = {"accelerator": accelerator, "devices": devices}
        if seed is not None:
            self._redraw_initial_weights(seed)
        with _seeded(seed):
            self.train_autoencoder(
                max_epochs,
                train_size=train_size,
                validation_size=validation_size,
                shuffle_set_split=shuffle_set_split,
                batch_size=batch_size,
                early_stopping=early_stopping,
                plan_kwargs=plan_kwargs,
                datasplitter_kwargs=datasplitter_kwargs,
                datamodule=datamodule,
                **common,
                **trainer_kwargs,
            )
            if not self.autoencoder_trained_:
                msg = (
                    f"max_epochs={max_epochs} made no optimiser step, so the autoencoder is "
                    "untrained and the diffusion cannot be trained; pass max_epochs >= 1."
                )
                raise ValueError(msg)
            self.train_diffusion(
                diffusion_max_epochs,
                batch_size=diffusion_batch_size,
                plan_kwargs=diffusion_plan_kwargs,
                early_stopping=diffusion_early_stopping,
                seed=0 if seed is None else seed,
                datamodule=datamodule,
                **common,
                **trainer_kwargs,
            )

    def _redraw_initial_weights(self, seed: int) -> None:
        """Draw an untrained model's initial weights again from ``seed``.

        The weights drawn when the model was built came from the global torch RNG (seeded
        only if ``scvi.settings.seed`` was set), so without this ``train(seed=s)`` would
        start from different weights in each process. Buffers (data statistics, fitted
        encoder PCs) are kept; a model whose autoencoder has trained is left as it is.
        """
        kwargs = getattr(self, "_module_kwargs", None)
        if kwargs is None or self.autoencoder_trained_ or self.is_trained_:
            return
        fresh = _fresh_parameters(type(self.module), kwargs, int(seed))
        own = dict(self.module.named_parameters())
        if fresh.keys() != own.keys() or any(
            fresh[k].shape != own[k].shape for k in own
        ):  # the module was changed after it was built
            logger.warning("train(seed=...) kept the initial weights: the module's changed.")
            return
        with torch.no_grad():
            for name, value in fresh.items():
                own[name].copy_(value)

    def _record_budget(self, batch_name: str, batch: Any, epochs_name: str, epochs: int) -> None:
        """Keep a stage's minibatch size and epochs in :attr:`recipe_` and log them once."""
        setattr(self, f"recipe_{batch_name}_", None if batch is None else int(batch))
        setattr(self, f"recipe_{epochs_name}_", int(epochs))
        logger.info("SEDModel training: %s=%s, %s=%d.", batch_name, batch, epochs_name, epochs)

    @staticmethod
    def _stage_trainer_kwargs(
        trainer_kwargs: dict, early_stopping: bool, monitor: str, defaults: dict | None = None
    ) -> dict:
        kwargs = {"gradient_clip_val": 1.0, **dict(trainer_kwargs)}
        if early_stopping:
            kwargs = {**(defaults or {}), **kwargs}
            kwargs.update(early_stopping=True, early_stopping_monitor=monitor)
        return kwargs

    def train_autoencoder(
        self,
        max_epochs: int | None = None,
        *,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = 0.9,
        validation_size: float | None = None,
        shuffle_set_split: bool = True,
        batch_size: int | None = None,
        early_stopping: bool = False,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        datamodule: LightningDataModule | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train only the autoencoder stage (teacher forcing); see :meth:`train`."""
        _check_epochs(max_epochs, "max_epochs")
        self._check_data_source(datamodule)
        preset = self.recipe_["preset"]
        if datamodule is not None:
            splitter = self._tokenizing_datamodule(datamodule)
            if max_epochs is None:
                max_epochs = autoencoder_epochs(preset, _steps_per_epoch(datamodule))
        else:
            if batch_size is None:
                batch_size = recipe_batch_size(preset)
            self._check_data(self.adata)  # the data may have changed since setup_anndata
            if uses_distributed_sampler(trainer_kwargs.get("strategy", "auto")):
                # the splitter's samplers split the rows across ranks themselves
                trainer_kwargs = {"use_distributed_sampler": False, **trainer_kwargs}
            if max_epochs is None:
                n_train = int(self.adata.n_obs * train_size)
                max_epochs = autoencoder_epochs(preset, math.ceil(n_train / batch_size))
            splitter = self._anndata_splitter(
                train_size=train_size,
                validation_size=validation_size,
                shuffle_set_split=shuffle_set_split,
                batch_size=batch_size,
                strategy=trainer_kwargs.get("strategy", "auto"),
                **(datasplitter_kwargs or {}),
            )
        self._record_budget("batch_size", batch_size, "max_epochs", max_epochs)
        fit_encoder_pcs(self, datamodule)  # data-dependent start of the encoder, once
        plan = self._training_plan_cls(self.module, **(plan_kwargs or {}))
        runner = self._train_runner_cls(
            self,
            training_plan=plan,
            data_splitter=splitter,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            **self._stage_trainer_kwargs(trainer_kwargs, early_stopping, "validation_loss"),
        )
        runner.records_split = datamodule is None  # a data module's rows have no AnnData index
        runner()
        self.autoencoder_trained_ = bool(self.autoencoder_trained_) or runner.stepped

    def _anndata_splitter(self, *, strategy: Any, **kwargs: Any):
        return self._data_splitter_cls(
            self.adata_manager,
            x_keys=self._x_keys,
            max_nonzero=self.max_nonzero_,
            on_long_rows=self.on_long_rows,
            distributed_sampler=uses_distributed_sampler(strategy),
            **kwargs,
        )

    def _check_data_source(self, datamodule: LightningDataModule | None) -> None:
        """Raise unless the model trains from its AnnData xor from a data module."""
        if datamodule is not None and self.adata is not None:
            msg = (
                "datamodule= trains a model set up from a data module; this model has an "
                "AnnData. Build it with `SEDModel(registry=SEDModel.setup_datamodule(dm))`, "
                "or train without datamodule=."
            )
            raise ValueError(msg)
        if datamodule is None and self.adata is None:
            how = (
                "pass the data module: model.train(datamodule=dm)"
                if self.registry_.get("setup_method_name") == SETUP_METHOD_NAME
                else "load it with its AnnData: SEDModel.load(path, adata=adata)"
            )
            msg = f"This model has no AnnData to train on; {how}."
            raise ValueError(msg)

    def _value_rules(self) -> ValueRules:
        return ValueRules(
            n_vars=self.module.n_features,
            nonnegative=self.value_likelihood_ != "gaussian",
            integer=self.value_likelihood_ in ("ztnb", "ztpoisson", "logcount"),
        )

    def _tokenizing_datamodule(self, datamodule: LightningDataModule) -> TokenizingDataModule:
        return TokenizingDataModule(
            datamodule,
            self._value_rules(),
            max_nonzero=self.max_nonzero_,
            on_long_rows=self.on_long_rows,
        )

    def train_diffusion(
        self,
        max_epochs: int | None = None,
        *,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        batch_size: int = 256,
        validation_size: float | None = None,
        early_stopping: bool = False,
        plan_kwargs: dict | None = None,
        seed: int = 0,
        datamodule: LightningDataModule | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train only the latent diffusion on the frozen encoder's means; see :meth:`train`.

        The latents of the autoencoder's training rows are computed once, standardised
        with their mean and standard deviation (stored in the model), and paired with the
        rows' condition codes.

        Parameters
        ----------
        max_epochs
            Epochs, or their cap with early stopping (default: the recipe's, see
            :meth:`train`).
        accelerator, devices
            Passed to Lightning.
        batch_size
            Minibatch size.
        validation_size
            Fraction of the latents held out to monitor the loss (default: 0.1 with early
            stopping, else 0).
        early_stopping
            Stop when the held-out loss has not improved by ``early_stopping_min_delta``
            (default 1e-3) for ``early_stopping_patience`` (default 10) epochs; pass
            either in ``trainer_kwargs`` to change it. Off by default (see
            :meth:`train`'s ``diffusion_early_stopping``). Early stopping is off under DDP
            (scvi-tools' Trainer disables it), where ``max_epochs`` applies.
        plan_kwargs
            Keyword arguments of :class:`~sc_sed.train.DiffusionTrainingPlan`.
        seed
            Seed of the held-out split of the latents.
        datamodule
            The data module the autoencoder trained from (models set up with
            :meth:`setup_datamodule`): the encoder means of its training loader's rows are
            computed by streaming over its minibatches, one at a time.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`/Lightning.
        """
        self._require("autoencoder", "train the diffusion")
        _check_epochs(max_epochs, "max_epochs")
        self._check_data_source(datamodule)
        if validation_size is None:
            validation_size = DIFFUSION_VALIDATION_SIZE if early_stopping else 0.0
        data = self._latent_data(validation_size, batch_size, seed, datamodule)
        if early_stopping and data.n_val == 0:
            msg = "early_stopping=True needs held-out latents; pass validation_size > 0."
            raise ValueError(msg)
        if max_epochs is None:
            n_batches = math.ceil(data.n_train * data.repeats / batch_size)
            max_epochs = diffusion_epochs(self.recipe_["preset"], data.n_train, n_batches)
        self._record_budget("diffusion_batch_size", batch_size, "diffusion_max_epochs", max_epochs)
        plan = self._diffusion_training_plan_cls(self.module.diffusion, **(plan_kwargs or {}))
        kwargs = self._stage_trainer_kwargs(
            trainer_kwargs, early_stopping, "validation_diffusion_loss", DIFFUSION_EARLY_STOPPING
        )
        runner = self._diffusion_train_runner_cls(
            self, training_plan=plan, data_splitter=data, max_epochs=max_epochs,
            accelerator=accelerator, devices=devices, **kwargs,
        )  # fmt: skip
        runner()
        self.diffusion_trained_ = bool(self.diffusion_trained_) or runner.stepped

    def _latent_data(
        self,
        validation_size: float,
        batch_size: int,
        seed: int,
        datamodule: LightningDataModule | None = None,
    ) -> LatentDataModule:
        """Standardised latents of the autoencoder's training rows with their condition codes."""
        if datamodule is not None:
            z, codes = self._streamed_latents(datamodule)
            rows = np.arange(z.shape[0])  # positions in the stream; the rows have no index
        else:
            rows = (
                self.train_indices_
                if self.train_indices_ is not None
                else np.arange(self.adata.n_obs)
            )
            rows = np.sort(np.asarray(rows))
            z = torch.as_tensor(self.get_latent_representation(indices=rows))
            codes = condition_codes(self.adata_manager, self._conditions, rows)
        diffusion = self.module.diffusion
        z = z.to(diffusion.latent_mean.device)
        diffusion.fit_stats(z)
        z = diffusion.standardise(z).cpu()
        self.train_condition_codes_ = codes
        return self._diffusion_data_cls(
            z, torch.as_tensor(codes), rows,
            validation_size=validation_size, batch_size=batch_size, seed=seed,
        )  # fmt: skip

    @torch.inference_mode()
    def _streamed_latents(self, datamodule: LightningDataModule) -> tuple[torch.Tensor, np.ndarray]:
        """Stream the encoder means and condition codes of a data module's training rows."""
        self.module.eval()
        adapter, zs, codes = self._tokenizing_datamodule(datamodule), [], []
        for batch in stream_batches(datamodule, stages=("train",), device=self.module.device):
            cond = [condition_block(batch, c.registry_key, c.n_cats) for c in self._conditions]
            tokens = adapter.tokenize(batch)
            zs.append(self.module.encode(tokens[TOKENS_INDEX_KEY], tokens[TOKENS_VALUE_KEY]).cpu())
            n = zs[-1].shape[0]
            codes.append(
                torch.stack(cond, 1).cpu() if cond else torch.zeros(n, 0, dtype=torch.long)
            )
        if not zs:
            msg = "The data module's training loader yielded no rows; nothing to encode."
            raise ValueError(msg)
        return torch.cat(zs), torch.cat(codes).numpy().astype(np.int64)
