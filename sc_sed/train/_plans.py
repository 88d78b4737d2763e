"""Lightning training plans for the two SED stages."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from scvi.train import TrainingPlan
from torch.optim.lr_scheduler import LambdaLR

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


def adam_optimizer(
    cls: type[torch.optim.Adam] | type[torch.optim.AdamW],
    params: Iterable[torch.nn.Parameter],
    *,
    fuse: bool = True,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build ``cls`` (Adam or AdamW) with torch's fused kernel where it runs, else its default.

    The fused step is the same update in one kernel per device instead of a Python loop over
    the parameter tensors: on a CPU it takes a fifth of the time for the denoiser's ~90
    tensors (``benchmarks/README.md``, Training time). Parameters on a device without the
    kernel, or ``fuse=False``, give the default implementation.

    Parameters
    ----------
    cls
        :class:`torch.optim.Adam` or :class:`torch.optim.AdamW`.
    params
        Parameters to optimise.
    fuse
        Try the fused kernel (pass False under mixed precision: Lightning refuses gradient
        clipping with an optimizer that unscales gradients itself).
    **kwargs
        Further arguments of ``cls`` (``lr``, ``eps``, ``weight_decay``, ...).

    Returns
    -------
    The optimizer.
    """
    params = list(params)
    if fuse:
        try:
            return cls(params, fused=True, **kwargs)
        except RuntimeError:  # a device (or dtype) without the fused kernel
            pass
    return cls(params, **kwargs)


def _may_fuse(plan: pl.LightningModule) -> bool:
    """Whether ``plan``'s trainer allows a fused optimizer (not under mixed precision)."""
    return "mixed" not in str(plan.trainer.precision)


class AutoencoderTrainingPlan(TrainingPlan):
    """Trains the set encoder and autoregressive decoder (teacher forcing).

    scvi-tools' :class:`~scvi.train.TrainingPlan` with three differences: only the
    encoder and decoder train (the diffusion waits for the second stage), AdamW with
    torch's default ``eps`` is the optimiser, and the learning rate follows a per-step
    warm-up and decay (:func:`lr_factor` through :class:`torch.optim.lr_scheduler.LambdaLR`).
    The losses are logged as ``train_loss``/``validation_loss``, the module's extra
    metrics as ``<name>_train``/``<name>_validation`` (scvi-tools' names). Adam and AdamW
    run torch's fused kernel where it can (see :func:`adam_optimizer`).

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
    **kwargs
        Further :class:`~scvi.train.TrainingPlan` arguments (e.g. ``eps``, ``compile``).
    """

    def __init__(
        self,
        module: SEDModule,
        *,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        warmup_steps: int | None = None,
        lr_schedule: Literal["cosine", "inverse_sqrt", "constant"] = "cosine",
        **kwargs: Any,
    ):
        kwargs = {"optimizer": "AdamW", "eps": 1e-8, **kwargs}
        super().__init__(module, lr=lr, weight_decay=weight_decay, **kwargs)
        self.warmup_steps = warmup_steps
        self.lr_schedule = lr_schedule

    def setup(self, stage: str) -> None:
        """Train only the autoencoder (before Lightning/DDP wraps the plan and builds the optimiser)."""
        if stage == "fit":
            _train_only(self.module, self.module.encoder, self.module.decoder)

    def compute_and_log_metrics(self, loss_output, metrics, mode: str) -> None:
        """scvi-tools' metric logging, run under ``no_grad`` instead of ``inference_mode``.

        Under DDP, Lightning reduces the logged batch sizes in place at the end of an
        epoch, which fails on tensors made in inference mode ("Inplace update to
        inference tensor outside InferenceMode"); scvi-tools' method is otherwise used as is.
        """
        with torch.no_grad():
            TrainingPlan.compute_and_log_metrics.__wrapped__(self, loss_output, metrics, mode)

    def get_optimizer_creator(self) -> Callable[[Iterable[torch.nn.Parameter]], Any]:
        """scvi-tools' optimizer creator; Adam and AdamW fused where they can be (:func:`adam_optimizer`)."""
        classes = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
        if self.optimizer_name not in classes:
            return super().get_optimizer_creator()
        cls, fuse = classes[self.optimizer_name], _may_fuse(self)
        return lambda params: adam_optimizer(
            cls, params, fuse=fuse, lr=self.lr, eps=self.eps, weight_decay=self.weight_decay
        )

    def configure_optimizers(self):
        """AdamW over the trainable parameters with warm-up and decay (see :func:`lr_factor`)."""
        config = super().configure_optimizers()
        total = int(self.trainer.estimated_stepping_batches)
        warmup = (
            self.warmup_steps if self.warmup_steps is not None else min(4000, int(0.05 * total))
        )
        sched = LambdaLR(config["optimizer"], lr_factor(self.lr_schedule, warmup, total))
        return {**config, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _train_only(module: torch.nn.Module, *parts: torch.nn.Module) -> None:
    """Freeze ``module`` except ``parts``; everything in training mode (frozen parts are unused)."""
    module.requires_grad_(False).train()
    for part in parts:
        part.requires_grad_(True)


# Not a scvi-tools TrainingPlan: its forward, ELBO metrics and KL warm-up assume a
# BaseModuleClass that returns a LossOutput from (inference, generative, loss); the
# diffusion is a plain nn.Module whose batches are (latent, condition) tuples and whose
# loss is one tensor, so only Lightning's hooks are shared.
class DiffusionTrainingPlan(pl.LightningModule):
    """Trains a :class:`~sc_sed.module.LatentDiffusion` on standardised vectors; keeps an EMA.

    SED passes ``SEDModule.diffusion`` (fed with frozen encoder means); the dense DDPM
    baseline passes its own diffusion over whole rows. The EMA of the denoiser is the
    module's :class:`torch.optim.swa_utils.AveragedModel` (``module.ema``), updated
    after every optimiser step.

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
    min_validation_draws
        Each held-out vector is scored with several noise draws, so that the validation
        loss averages over at least this many (given ``n_obs_validation``, which the
        runner sets) and reflects all noise levels rather than a few.
    """

    def __init__(
        self,
        module: LatentDiffusion,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ema_decay: float = 0.999,
        min_validation_draws: int = 1024,
    ):
        super().__init__()
        self.module = module
        self.lr = lr
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.min_validation_draws = min_validation_draws
        self.n_obs_validation: int | None = None

    def setup(self, stage: str) -> None:
        """Train only the denoiser (before Lightning/DDP wraps the plan and builds the optimiser)."""
        if stage == "fit":
            _train_only(self.module, self.module.denoiser)

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
        """Diffusion loss of the EMA denoiser on held-out latents, same noise every epoch.

        The EMA network is the one that samples, so early stopping waits until it (not
        only the trained network, which it lags by about ``1 / (1 - ema_decay)`` steps)
        stops improving. Fixed draws make epochs comparable, so early stopping reacts to
        the model and not to the noise of a small validation set.
        """
        z, cond = batch
        draws = max(1, math.ceil(self.min_validation_draws / max(1, self.n_obs_validation or 1)))
        generator = torch.Generator(device=z.device).manual_seed(batch_idx)
        loss = self.module.loss(
            z.repeat(draws, 1), cond.repeat(draws, 1), generator=generator, ema=True
        )
        self.log(
            "validation_diffusion_loss",
            loss,
            on_epoch=True,
            on_step=False,
            batch_size=z.shape[0],
            sync_dist=True,
        )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Update the EMA weights (with a warm-up of the decay)."""
        step = self.global_step
        self.module.update_ema(min(self.ema_decay, (1 + step) / (10 + step)))

    def on_fit_end(self) -> None:
        """Freeze everything again."""
        self.module.requires_grad_(False).eval()

    def configure_optimizers(self):
        """AdamW (fused where it can be, :func:`adam_optimizer`) with a short warm-up and cosine decay (see :func:`lr_factor`)."""
        opt = adam_optimizer(
            torch.optim.AdamW,
            self.module.denoiser.parameters(),
            fuse=_may_fuse(self),
            lr=self.lr,
            weight_decay=self.weight_decay,
        )
        total = int(self.trainer.estimated_stepping_batches)
        sched = LambdaLR(opt, lr_factor("cosine", min(500, total // 20), total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
