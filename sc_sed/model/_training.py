"""Training of SEDModel: the autoencoder stage, then the latent-diffusion stage."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scvi
import torch
from scvi.model._utils import use_distributed_sampler
from scvi.train import TrainRunner

from sc_sed.train import (
    AutoencoderTrainingPlan,
    DiffusionTrainingPlan,
    LatentDataModule,
    SparseDataSplitter,
)

from ._conditions import condition_codes


def _default_epochs(n_rows: int, batch_size: int, target_steps: int, cap: int) -> int:
    steps_per_epoch = max(1, math.ceil(n_rows / batch_size))
    return int(min(cap, max(1, math.ceil(target_steps / steps_per_epoch))))


class TrainingMixin:
    """Two-stage training of :class:`~sc_sed.SEDModel` (autoencoder, then latent diffusion)."""

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
        batch_size: int = 32,
        diffusion_batch_size: int = 256,
        early_stopping: bool = False,
        seed: int | None = None,
        plan_kwargs: dict | None = None,
        diffusion_plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train both stages: the autoencoder, then the latent diffusion on its frozen means.

        Parameters
        ----------
        max_epochs
            Autoencoder epochs (default: about 3,000 optimiser steps, at most 400 epochs).
        diffusion_max_epochs
            Diffusion epochs (default: about 6,000 optimiser steps). Small datasets are
            repeated so that a diffusion epoch has at least 32 minibatches.
        accelerator, devices
            Passed to Lightning (``"auto"`` picks a GPU when there is one).
        train_size, validation_size, shuffle_set_split
            Split of the registered rows for the autoencoder (the diffusion trains on the
            autoencoder's training rows).
        batch_size
            Autoencoder minibatch size.
        diffusion_batch_size
            Diffusion minibatch size.
        early_stopping
            Stop each stage when its validation loss stops improving (needs a validation
            split; see ``early_stopping_patience`` etc. in ``trainer_kwargs``).
        seed
            Seed for the data split, minibatch order and training noise (sets
            ``scvi.settings.seed``, which seeds Python, NumPy and torch); None keeps the
            current global state.
        plan_kwargs
            Keyword arguments of :class:`~sc_sed.train.AutoencoderTrainingPlan`.
        diffusion_plan_kwargs
            Keyword arguments of :class:`~sc_sed.train.DiffusionTrainingPlan`.
        datasplitter_kwargs
            Keyword arguments of :class:`~sc_sed.train.SparseDataSplitter`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`/Lightning (e.g. ``strategy="ddp"``,
            ``precision="bf16-mixed"``, ``enable_progress_bar=False``).
        """
        if seed is not None:
            scvi.settings.seed = seed
        common = {"accelerator": accelerator, "devices": devices, "early_stopping": early_stopping}
        self.train_autoencoder(
            max_epochs,
            train_size=train_size,
            validation_size=validation_size,
            shuffle_set_split=shuffle_set_split,
            batch_size=batch_size,
            plan_kwargs=plan_kwargs,
            datasplitter_kwargs=datasplitter_kwargs,
            **common,
            **trainer_kwargs,
        )
        self.train_diffusion(
            diffusion_max_epochs,
            batch_size=diffusion_batch_size,
            plan_kwargs=diffusion_plan_kwargs,
            validation_size=0.1 if early_stopping else 0.0,
            seed=0 if seed is None else seed,
            **common,
            **trainer_kwargs,
        )

    def _run(
        self, plan, data, max_epochs, accelerator, devices, early_stopping, monitor, trainer_kwargs
    ):
        trainer_kwargs = dict(trainer_kwargs)
        trainer_kwargs.setdefault("gradient_clip_val", 1.0)
        if early_stopping:
            trainer_kwargs.update(early_stopping=True, early_stopping_monitor=monitor)
        previous, was_trained = self.history_ or {}, self.is_trained_
        self.is_trained_ = False  # let scvi-tools record this stage's history afresh
        runner = TrainRunner(
            self, training_plan=plan, data_splitter=data, max_epochs=max_epochs,
            accelerator=accelerator, devices=devices, **trainer_kwargs,
        )  # fmt: skip
        try:
            with warnings.catch_warnings():
                # the diffusion stage keeps the frozen autoencoder in eval mode on purpose
                warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
                runner()
        finally:
            self.history_ = {**previous, **(self.history_ or {})}
            self.is_trained_ = was_trained
        self.module.eval()

    def train_autoencoder(
        self,
        max_epochs: int | None = None,
        *,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = 0.9,
        validation_size: float | None = None,
        shuffle_set_split: bool = True,
        batch_size: int = 32,
        early_stopping: bool = False,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train only the autoencoder stage (teacher forcing); see :meth:`train`."""
        if max_epochs is None:
            max_epochs = _default_epochs(int(self.adata.n_obs * train_size), batch_size, 3000, 400)
        splitter = SparseDataSplitter(
            self.adata_manager,
            x_keys=self._x_keys,
            max_nonzero=self.max_nonzero_,
            on_long_rows=self.on_long_rows,
            train_size=train_size,
            validation_size=validation_size,
            shuffle_set_split=shuffle_set_split,
            batch_size=batch_size,
            distributed_sampler=use_distributed_sampler(trainer_kwargs.get("strategy", "auto")),
            **(datasplitter_kwargs or {}),
        )
        plan = AutoencoderTrainingPlan(self.module, **(plan_kwargs or {}))
        self._run(
            plan,
            splitter,
            max_epochs,
            accelerator,
            devices,
            early_stopping,
            "validation_loss",
            trainer_kwargs,
        )
        self.autoencoder_trained_ = True
        self.is_trained_ = True

    def train_diffusion(
        self,
        max_epochs: int | None = None,
        *,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        batch_size: int = 256,
        validation_size: float = 0.0,
        early_stopping: bool = False,
        plan_kwargs: dict | None = None,
        seed: int = 0,
        **trainer_kwargs: Any,
    ) -> None:
        """Train only the latent diffusion on the frozen encoder's means; see :meth:`train`.

        The latents of the autoencoder's training rows are computed once, standardised
        with their mean and standard deviation (stored in the model), and paired with the
        rows' condition codes.
        """
        self._require("autoencoder", "train the diffusion")
        rows = (
            self.train_indices_ if self.train_indices_ is not None else np.arange(self.adata.n_obs)
        )
        rows = np.sort(np.asarray(rows))
        z = torch.as_tensor(self.get_latent_representation(indices=rows))
        diffusion = self.module.diffusion
        z = z.to(diffusion.latent_mean.device)
        diffusion.fit_stats(z)
        z = diffusion.standardise(z).cpu()
        codes = condition_codes(self.adata_manager, self._conditions, rows)
        self.train_condition_codes_ = codes
        cond = torch.as_tensor(codes)
        data = LatentDataModule(
            z, cond, rows, validation_size=validation_size, batch_size=batch_size, seed=seed
        )
        if max_epochs is None:
            max_epochs = _default_epochs(data.n_train * data.repeats, batch_size, 6000, 2000)
        splits = (self.train_indices_, self.validation_indices_, self.test_indices_)
        plan = DiffusionTrainingPlan(self.module.diffusion, **(plan_kwargs or {}))
        self._run(
            plan,
            data,
            max_epochs,
            accelerator,
            devices,
            early_stopping,
            "validation_diffusion_loss",
            trainer_kwargs,
        )
        self.train_indices_, self.validation_indices_, self.test_indices_ = splits
        self.diffusion_trained_ = True
