"""LatentDiffusion: x₀-prediction diffusion on standardised vectors (tensors only).

Used by SED on its encoder latents and, unchanged, by the dense DDPM baseline on whole
normalised rows: the two differ only in what they diffuse.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from sc_sed.diffusion import CosineLogSNRSchedule, make_sampler
from sc_sed.nn import LatentDenoiser


class LatentDiffusion(nn.Module):
    """Denoiser, its EMA copy, the noise schedule and the standardisation statistics.

    Parameters
    ----------
    n_latent
        Size of the diffused vectors.
    n_cats_per_cond
        Categories of each conditioning covariate (empty: unconditional).
    widths
        Widths of the MLP U-Net.
    n_embed
        Noise-level/condition embedding width.
    dropout_rate
        Dropout in the denoiser.
    cond_dropout
        Probability of dropping each condition in training (classifier-free guidance).
    self_cond_prob
        Probability of self-conditioning in training.
    logsnr_min, logsnr_max
        Range of the cosine log-SNR schedule.
    """

    def __init__(
        self,
        n_latent: int,
        n_cats_per_cond: Sequence[int] = (),
        widths: Sequence[int] = (512, 512, 256, 128),
        n_embed: int = 128,
        dropout_rate: float = 0.0,
        cond_dropout: float = 0.1,
        self_cond_prob: float = 0.5,
        logsnr_min: float = -15.0,
        logsnr_max: float = 15.0,
    ):
        super().__init__()
        self.n_latent = int(n_latent)
        self.n_cats_per_cond = list(n_cats_per_cond)
        self.cond_dropout = cond_dropout
        self.self_cond_prob = self_cond_prob
        self.denoiser = LatentDenoiser(
            self.n_latent, widths, self.n_cats_per_cond, n_embed, dropout_rate
        )
        self.ema_denoiser = copy.deepcopy(self.denoiser).requires_grad_(False)
        self.schedule = CosineLogSNRSchedule(logsnr_min, logsnr_max)
        self.register_buffer("latent_mean", torch.zeros(self.n_latent))
        self.register_buffer("latent_std", torch.ones(self.n_latent))

    # -- standardisation -----------------------------------------------------------------
    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store training mean/std (``std`` floored at 1e-4) used to standardise vectors."""
        mean = torch.as_tensor(mean, dtype=torch.float32, device=self.latent_mean.device)
        std = torch.as_tensor(std, dtype=torch.float32, device=self.latent_std.device)
        if mean.shape != (self.n_latent,) or std.shape != (self.n_latent,):
            msg = f"mean and std must have shape ({self.n_latent},), got {tuple(mean.shape)} and {tuple(std.shape)}."
            raise ValueError(msg)
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std.clamp_min(1e-4))

    def fit_stats(self, z: torch.Tensor) -> None:
        """Store the mean/std of training vectors ``z`` (``(n, n_latent)``)."""
        self.set_stats(z.mean(0), z.std(0))

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        """Map vectors to the standardised diffusion space."""
        return (z - self.latent_mean) / self.latent_std

    def unstandardise(self, z: torch.Tensor) -> torch.Tensor:
        """Map diffusion samples back to the original space."""
        return z * self.latent_std + self.latent_mean

    # -- training --------------------------------------------------------------------------
    def _drop_conditions(self, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[1] == 0 or self.cond_dropout <= 0:
            return cond
        null = self.denoiser.null_condition(cond.shape[0], cond.device)
        drop = torch.rand(cond.shape, device=cond.device) < self.cond_dropout
        return torch.where(drop, null, cond)

    def loss(self, z0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x₀-prediction loss on standardised vectors ``z0`` with condition codes ``cond``.

        Times are uniform on [0, 1]; the squared error is weighted by ``max(SNR, 1)``
        (truncated-SNR weighting). With probability ``self_cond_prob`` the denoiser first
        predicts x₀ without gradient and sees that estimate as self-conditioning input.
        """
        t = torch.rand(z0.shape[0], device=z0.device)
        z_t = self.schedule.add_noise(z0, t, torch.randn_like(z0))
        logsnr = self.schedule.logsnr(t)
        cond = self._drop_conditions(cond)
        self_cond = torch.zeros_like(z0)
        if torch.rand(()) < self.self_cond_prob:
            with torch.no_grad():
                self_cond = self.denoiser(z_t, logsnr, self_cond, cond)
        pred = self.denoiser(z_t, logsnr, self_cond, cond)
        weight = torch.exp(logsnr).clamp(1.0, 1e4)
        return (weight * ((pred - z0) ** 2).mean(-1)).mean()

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema ← decay·ema + (1 − decay)·weights`` for the denoiser."""
        for ema, p in zip(self.ema_denoiser.parameters(), self.denoiser.parameters(), strict=True):
            ema.lerp_(p.detach(), 1.0 - decay)
        for ema, b in zip(self.ema_denoiser.buffers(), self.denoiser.buffers(), strict=True):
            ema.copy_(b)

    # -- sampling ----------------------------------------------------------------------------
    def guided_x0(
        self,
        z_t: torch.Tensor,
        logsnr: torch.Tensor,
        self_cond: torch.Tensor,
        cond: torch.Tensor,
        guidance: Sequence[float],
    ) -> torch.Tensor:
        """x₀ estimate of the EMA denoiser with per-covariate classifier-free guidance.

        With covariates ``c_1..c_K`` and weights ``w_k`` the estimate is
        ``x0(∅) + Σ_k w_k [x0(c_1..c_k) − x0(c_1..c_{k−1})]``: all weights 1 give the
        conditional estimate, all 0 the unconditional one, and a single covariate gives
        standard guidance ``x0(∅) + w (x0(c) − x0(∅))``.
        """
        net = self.ema_denoiser
        k = cond.shape[1]
        if k == 0 or all(w == 1.0 for w in guidance):
            return net(z_t, logsnr, self_cond, cond)
        null = net.null_condition(cond.shape[0], cond.device)
        variants = [torch.cat([cond[:, :j], null[:, j:]], dim=1) for j in range(k + 1)]
        preds = net(
            z_t.repeat(k + 1, 1),
            logsnr.repeat(k + 1),
            self_cond.repeat(k + 1, 1),
            torch.cat(variants),
        ).chunk(k + 1)
        out = preds[0]
        for j, w in enumerate(guidance, start=1):
            out = out + w * (preds[j] - preds[j - 1])
        return out

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        *,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        n_steps: int = 50,
        guidance: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample vectors by reverse diffusion with the EMA denoiser.

        Parameters
        ----------
        cond
            ``(n, n_conds)`` condition codes (one row per vector to sample).
        sampler
            ``"ddim"`` (deterministic) or ``"ddpm"`` (ancestral).
        n_steps
            Number of sampling steps.
        guidance
            One guidance weight per covariate (default all 1: plain conditional).
        generator
            Source of randomness.

        Returns
        -------
        ``(n, n_latent)`` samples in the original (un-standardised) space.
        """
        guidance = list(guidance) if guidance is not None else [1.0] * cond.shape[1]
        step = make_sampler(sampler, self.schedule, n_steps)
        times = step.timesteps(cond.device)
        z = step.init_noise((cond.shape[0], self.n_latent), generator, cond.device)
        x0 = torch.zeros_like(z)
        for t, s in zip(times[:-1], times[1:], strict=True):
            logsnr = self.schedule.logsnr(t).expand(z.shape[0])
            x0 = self.guided_x0(z, logsnr, x0, cond, guidance)
            z = step.step(z, x0, t, s, generator=generator)
        return self.unstandardise(z)
