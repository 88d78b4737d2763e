"""LatentDiffusion: x₀-prediction diffusion on standardised vectors (tensors only).

Used by SED on its encoder latents and, unchanged, by the dense DDPM baseline on whole
normalised rows: the two differ only in what they diffuse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from sc_sed._defaults import MODULE_DEFAULTS as D
from sc_sed.diffusion import CosineLogSNRSchedule, make_sampler
from sc_sed.nn import LatentDenoiser


class LatentDiffusion(nn.Module):
    """Denoiser, its EMA copy, the noise schedule and the standardisation statistics.

    The EMA is a :class:`torch.optim.swa_utils.AveragedModel` (``self.ema``; its
    weights are ``ema.module``, also reachable as :attr:`ema_denoiser`) that samples.

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
        widths: Sequence[int] = D.denoiser_widths,
        n_embed: int = D.n_embed,
        dropout_rate: float = D.denoiser_dropout,
        cond_dropout: float = D.cond_dropout,
        self_cond_prob: float = D.self_cond_prob,
        logsnr_min: float = D.logsnr_min,
        logsnr_max: float = D.logsnr_max,
    ):
        super().__init__()
        self.n_latent = int(n_latent)
        self.n_cats_per_cond = list(n_cats_per_cond)
        self.cond_dropout = cond_dropout
        self.self_cond_prob = self_cond_prob
        self.denoiser = LatentDenoiser(
            self.n_latent, widths, self.n_cats_per_cond, n_embed, dropout_rate
        )
        self.ema = AveragedModel(self.denoiser, multi_avg_fn=_EMA(), use_buffers=True)
        self.ema.requires_grad_(False)
        self._register_load_state_dict_pre_hook(_rename_legacy_ema)
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
        """Store the mean/std of training vectors ``z`` (``(n, n_latent)``, ``n >= 2``).

        Raises ``ValueError`` for fewer than two vectors (the std is undefined) or
        non-finite values.
        """
        if z.shape[0] < 2:
            msg = (
                f"The latent statistics need at least 2 training rows, got {z.shape[0]}; "
                "train on more rows (or a smaller validation split)."
            )
            raise ValueError(msg)
        if not torch.isfinite(z).all():
            msg = "The encoder produced non-finite latents; check the data and the autoencoder."
            raise ValueError(msg)
        self.set_stats(z.mean(0), z.std(0))

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        """Map vectors to the standardised diffusion space."""
        return (z - self.latent_mean) / self.latent_std

    def unstandardise(self, z: torch.Tensor) -> torch.Tensor:
        """Map diffusion samples back to the original space."""
        return z * self.latent_std + self.latent_mean

    # -- training --------------------------------------------------------------------------
    @property
    def ema_denoiser(self) -> LatentDenoiser:
        """The EMA weights of the denoiser (the network that samples)."""
        return self.ema.module

    def _drop_conditions(
        self, cond: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        if cond.shape[1] == 0 or self.cond_dropout <= 0:
            return cond
        null = self.denoiser.null_condition(cond.shape[0], cond.device)
        drop = torch.rand(cond.shape, device=cond.device, generator=generator) < self.cond_dropout
        return torch.where(drop, null, cond)

    def loss(
        self,
        z0: torch.Tensor,
        cond: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        ema: bool = False,
    ) -> torch.Tensor:
        """x₀-prediction loss on standardised vectors ``z0`` with condition codes ``cond``.

        Times are uniform on [0, 1]; the squared error is weighted by ``max(SNR, 1)``
        (truncated-SNR weighting). With probability ``self_cond_prob`` the denoiser first
        predicts x₀ without gradient and sees that estimate as self-conditioning input.
        ``generator`` (on ``z0``'s device) fixes every random draw, e.g. for a validation
        loss comparable across epochs. ``ema=True`` scores the EMA denoiser (the one that
        samples) instead of the trained one.
        """
        net = self.ema_denoiser if ema else self.denoiser
        kw = {"device": z0.device, "generator": generator}
        t = torch.rand(z0.shape[0], **kw)
        z_t = self.schedule.add_noise(z0, t, torch.randn(z0.shape, dtype=z0.dtype, **kw))
        logsnr = self.schedule.logsnr(t)
        cond = self._drop_conditions(cond, generator)
        self_cond = torch.zeros_like(z0)
        if torch.rand((), **kw) < self.self_cond_prob:
            with torch.no_grad():
                self_cond = net(z_t, logsnr, self_cond, cond)
        pred = net(z_t, logsnr, self_cond, cond)
        weight = torch.exp(logsnr).clamp(1.0, 1e4)
        return (weight * ((pred - z0) ** 2).mean(-1)).mean()

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema ← decay·ema + (1 − decay)·weights`` for the denoiser (the first call copies)."""
        self.ema.multi_avg_fn.decay = decay
        self.ema.update_parameters(self.denoiser)

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
        start: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """Sample vectors by reverse diffusion with the EMA denoiser.

        Parameters
        ----------
        cond
            ``(n, n_conds)`` condition codes (one row per vector to sample).
        sampler
            ``"ddim"`` (deterministic) or ``"ddpm"`` (ancestral).
        n_steps
            Number of sampling steps of a run from pure noise (``t = 1``).
        guidance
            One guidance weight per covariate (default all 1: plain conditional).
        generator
            Source of randomness.
        start
            ``(n, n_latent)`` vectors in the original space to start from (SDEdit): each is
            standardised, noised to ``t = strength`` by the forward process
            ``q(z_t | z_0)`` and denoised from there to ``t = 0`` in
            ``ceil(strength * n_steps)`` steps. None starts from pure noise.
        strength
            Time in ``(0, 1]`` the ``start`` vectors are noised to (ignored without
            ``start``): near 0 they barely move, 1 forgets them.

        Returns
        -------
        ``(n, n_latent)`` samples in the original (un-standardised) space.
        """
        guidance = list(guidance) if guidance is not None else [1.0] * cond.shape[1]
        if start is None:
            step = make_sampler(sampler, self.schedule, n_steps)
            times = step.timesteps(cond.device)
            z = step.init_noise((cond.shape[0], self.n_latent), generator, cond.device)
        else:
            step = make_sampler(sampler, self.schedule, max(1, math.ceil(strength * n_steps)))
            times = step.timesteps(cond.device, start=strength)
            z0 = self.standardise(start.to(cond.device, torch.float32))
            noise = torch.randn(z0.shape, generator=generator, device=cond.device)
            z = self.schedule.add_noise(z0, times[0].expand(z0.shape[0]), noise)
        x0 = torch.zeros_like(z)
        for t, s in zip(times[:-1], times[1:], strict=True):
            logsnr = self.schedule.logsnr(t).expand(z.shape[0])
            x0 = self.guided_x0(z, logsnr, x0, cond, guidance)
            z = step.step(z, x0, t, s, generator=generator)
        return self.unstandardise(z)


class _EMA:
    """``multi_avg_fn`` of :class:`AveragedModel` with a decay that may change per step."""

    def __init__(self, decay: float = 0.999):
        self.decay = decay

    def __call__(self, averaged: list, current: list, num_averaged) -> None:
        get_ema_multi_avg_fn(self.decay)(averaged, current, num_averaged)


def _rename_legacy_ema(state_dict: dict, prefix: str, *args) -> None:
    """Map the EMA keys of models saved before the EMA became an AveragedModel."""
    old = f"{prefix}ema_denoiser."
    legacy = [k for k in state_dict if k.startswith(old)]
    for key in legacy:
        state_dict[f"{prefix}ema.module.{key[len(old) :]}"] = state_dict.pop(key)
    if legacy:
        state_dict.setdefault(f"{prefix}ema.n_averaged", torch.tensor(1, dtype=torch.long))
