"""Lightning training plans for the two SED stages."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from sc_sed.module import LatentDiffusion, SEDModule


def lr_factor(
    schedule: Literal["cosine", "inverse_sqrt", "constant"], warmup_steps: int, total_steps: int
) -> Callable[[int], float]:
    """Learning-rate multiplier per optimiser step: linear warm-up, then a decay.

    ``"cosine"`` decays to 10% of the peak at ``total_steps``; ``"inverse_sqrt"`` (the
    published SED setting, for long runs) decays as ``sqrt(warmup / step)``;
    ``"constant"`` keeps the peak.
    """
    warmup_steps, total_steps = max(1, int(warmup_steps)), max(1, int(total_steps))

    def factor(step: int) -> float:
        step = step + 1
        if step < warmup_steps:
            return step / warmup_steps
        if schedule == "inverse_sqrt":
            return math.sqrt(warmup_steps / step)
        if schedule == "cosine":
            frac = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        return 1.0

    return factor


class AutoencoderTrainingPlan(pl.LightningModule):
    """Trains the set encoder and autoregressive decoder (teacher forcing).

    Parameters
    ----------
    module
        The :class:`~sc_sed.module.SEDModule`.
    lr
        Peak learning rate (AdamW).
    weight_decay
        AdamW weight decay.
    warmup_steps
        Linear warm-up steps; ``None`` uses 5% of the run's optimiser steps (at most 4,000).
    lr_schedule
        Decay after warm-up, see :func:`lr_factor`.
    """

    def __init__(
        self,
        module: SEDModule,
        *,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        warmup_steps: int | None = None,
        lr_schedule: Literal["cosine", "inverse_sqrt", "constant"] = "cosine",
    ):
        super().__init__()
        self.module = module
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.lr_schedule = lr_schedule
        # Train only the autoencoder; the denoiser waits for the second stage. This must
        # happen before Lightning wraps the plan (DDP tracks trainable parameters then).
        module.requires_grad_(False)
        module.encoder.requires_grad_(True)
        module.decoder.requires_grad_(True)

    def _step(self, batch: dict[str, Any], prefix: str) -> torch.Tensor:
        _, _, out = self.module(batch)
        n = batch[next(iter(batch))].shape[0]
        self.log(
            f"{prefix}_loss",
            out.loss,
            on_epoch=True,
            on_step=False,
            prog_bar=True,
            batch_size=n,
            sync_dist=True,
        )
        for name, value in out.extra_metrics.items():
            self.log(
                f"{prefix}_{name}",
                value,
                on_epoch=True,
                on_step=False,
                batch_size=n,
                sync_dist=True,
            )
        return out.loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One teacher-forced step."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Log the validation loss and index accuracy."""
        self._step(batch, "validation")

    def configure_optimizers(self):
        """AdamW with warm-up and decay (see :func:`lr_factor`)."""
        params = [
            p for n, p in self.module.named_parameters() if n.startswith(("encoder.", "decoder."))
        ]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = (
            self.warmup_steps if self.warmup_steps is not None else min(4000, int(0.05 * total))
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(self.lr_schedule, warmup, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class DiffusionTrainingPlan(pl.LightningModule):
    """Trains a :class:`~sc_sed.module.LatentDiffusion` on standardised vectors; keeps an EMA.

    SED passes ``SEDModule.diffusion`` (fed with frozen encoder means); the dense DDPM
    baseline passes its own diffusion over whole rows.

    Parameters
    ----------
    module
        The :class:`~sc_sed.module.LatentDiffusion` to train.
    lr
        Learning rate (AdamW, cosine decay to 10% over the run).
    weight_decay
        AdamW weight decay.
    ema_decay
        Decay of the exponential moving average of the denoiser weights. Early in
        training the effective decay is ``min(ema_decay, (1 + step) / (10 + step))``.
    """

    def __init__(
        self,
        module: LatentDiffusion,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ema_decay: float = 0.999,
    ):
        super().__init__()
        self.module = module
        self.lr = lr
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        # Train only the denoiser (set before Lightning/DDP wraps the plan).
        module.requires_grad_(False)
        module.denoiser.requires_grad_(True)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        """One denoising step on a batch of (latent, condition codes)."""
        z, cond = batch
        loss = self.module.loss(z, cond)
        self.log(
            "train_diffusion_loss",
            loss,
            on_epoch=True,
            on_step=False,
            prog_bar=True,
            batch_size=z.shape[0],
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Diffusion loss on held-out latents."""
        z, cond = batch
        loss = self.module.loss(z, cond)
        self.log(
            "validation_diffusion_loss",
            loss,
            on_epoch=True,
            on_step=False,
            batch_size=z.shape[0],
            sync_dist=True,
        )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Update the EMA weights."""
        step = self.global_step
        self.module.update_ema(min(self.ema_decay, (1 + step) / (10 + step)))

    def on_fit_end(self) -> None:
        """Freeze everything again."""
        self.module.requires_grad_(False)

    def configure_optimizers(self):
        """AdamW with a short warm-up and cosine decay (see :func:`lr_factor`)."""
        opt = torch.optim.AdamW(
            self.module.denoiser.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        total = int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lr_factor("cosine", min(500, total // 20), total)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
