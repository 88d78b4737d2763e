"""Lightning training plans for the two SED stages."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from sc_sed.module import SEDModule


def warmup_inverse_sqrt(warmup_steps: int):
    """Learning-rate factor: linear warm-up, then inverse-square-root decay."""
    warmup_steps = max(1, int(warmup_steps))

    def factor(step: int) -> float:
        step = step + 1
        return min(step / warmup_steps, math.sqrt(warmup_steps / step))

    return factor


class AutoencoderTrainingPlan(pl.LightningModule):
    """Trains the set encoder and autoregressive decoder (teacher forcing).

    Parameters
    ----------
    module
        The :class:`~sc_sed.module.SEDModule`.
    lr
        Peak learning rate (Adam).
    weight_decay
        AdamW weight decay.
    warmup_steps
        Linear warm-up steps before inverse-square-root decay; ``None`` uses 5% of the
        run's optimiser steps (at most 4,000).
    """

    def __init__(
        self,
        module: SEDModule,
        *,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        warmup_steps: int | None = None,
    ):
        super().__init__()
        self.module = module
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps

    def on_fit_start(self) -> None:
        """Train only the autoencoder; the denoiser waits for the second stage."""
        self.module.requires_grad_(False)
        self.module.encoder.requires_grad_(True)
        self.module.decoder.requires_grad_(True)

    def _step(self, batch: dict[str, Any], prefix: str) -> torch.Tensor:
        _, _, out = self.module(batch)
        n = batch[next(iter(batch))].shape[0]
        self.log(f"{prefix}_loss", out.loss, on_epoch=True, on_step=False, prog_bar=True, batch_size=n, sync_dist=True)
        for name, value in out.extra_metrics.items():
            self.log(f"{prefix}_{name}", value, on_epoch=True, on_step=False, batch_size=n, sync_dist=True)
        return out.loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One teacher-forced step."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Validation loss and index accuracy."""
        self._step(batch, "validation")

    def configure_optimizers(self):
        """AdamW with warm-up and inverse-square-root decay."""
        params = [p for n, p in self.module.named_parameters() if n.startswith(("encoder.", "decoder."))]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        warmup = self.warmup_steps
        if warmup is None:
            warmup = min(4000, max(1, int(0.05 * self.trainer.estimated_stepping_batches)))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_inverse_sqrt(warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class DiffusionTrainingPlan(pl.LightningModule):
    """Trains the latent denoiser on standardised, frozen encoder means; keeps an EMA.

    Parameters
    ----------
    module
        The :class:`~sc_sed.module.SEDModule`.
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
        module: SEDModule,
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

    def on_fit_start(self) -> None:
        """Train only the denoiser; the autoencoder stays frozen."""
        self.module.requires_grad_(False)
        self.module.denoiser.requires_grad_(True)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One denoising step on a batch of (latent, condition codes)."""
        z, cond = batch
        loss = self.module.diffusion_loss(z, cond)
        self.log("train_diffusion_loss", loss, on_epoch=True, on_step=False, prog_bar=True, batch_size=z.shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Diffusion loss on held-out latents."""
        z, cond = batch
        loss = self.module.diffusion_loss(z, cond)
        self.log("validation_diffusion_loss", loss, on_epoch=True, on_step=False, batch_size=z.shape[0], sync_dist=True)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Update the EMA weights."""
        step = self.global_step
        self.module.update_ema(min(self.ema_decay, (1 + step) / (10 + step)))

    def on_fit_end(self) -> None:
        """Freeze everything again."""
        self.module.requires_grad_(False)

    def configure_optimizers(self):
        """AdamW with cosine decay."""
        opt = torch.optim.AdamW(self.module.denoiser.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
