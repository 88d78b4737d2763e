"""Continuous-time noise schedule parameterised by the log signal-to-noise ratio."""

from __future__ import annotations

import math

import torch
from torch import nn


class CosineLogSNRSchedule(nn.Module):
    """Cosine schedule in log-SNR form, ``t ∈ [0, 1]``.

    ``logsnr(t) = -2 log tan(a t + b)``, with ``a, b`` chosen so that
    ``logsnr(0) = logsnr_max`` and ``logsnr(1) = logsnr_min``. A noisy latent is
    ``z_t = alpha_t z_0 + sigma_t eps`` with ``alpha_t² = sigmoid(logsnr)`` and
    ``sigma_t² = sigmoid(-logsnr)`` (variance preserving).

    Parameters
    ----------
    logsnr_min
        log-SNR at ``t = 1`` (almost pure noise).
    logsnr_max
        log-SNR at ``t = 0`` (almost clean).
    """

    def __init__(self, logsnr_min: float = -15.0, logsnr_max: float = 15.0):
        super().__init__()
        if logsnr_min >= logsnr_max:
            msg = f"logsnr_min={logsnr_min} must be below logsnr_max={logsnr_max}."
            raise ValueError(msg)
        b = math.atan(math.exp(-0.5 * logsnr_max))
        a = math.atan(math.exp(-0.5 * logsnr_min)) - b
        self.register_buffer("a", torch.tensor(a))
        self.register_buffer("b", torch.tensor(b))

    def logsnr(self, t: torch.Tensor) -> torch.Tensor:
        """log-SNR at times ``t``."""
        return -2.0 * torch.log(torch.tan(self.a * t + self.b))

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal and noise scales ``(alpha_t, sigma_t)`` at times ``t``."""
        logsnr = self.logsnr(t)
        return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()

    def add_noise(self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``alpha_t z0 + sigma_t noise`` for ``(batch, dim)`` latents and ``(batch,)`` times."""
        alpha, sigma = self.alpha_sigma(t)
        return alpha[:, None] * z0 + sigma[:, None] * noise
