"""Samplers that step a noisy latent from ``t = 1`` to ``t = 0`` given x₀ predictions.

Each sampler is a small object: ``timesteps()`` gives the time grid, ``step()`` maps the
state at time ``t`` and the model's clean-latent prediction to the state at time ``s < t``
(diffusers-style), with an explicit ``generator`` for reproducible noise.
"""

from __future__ import annotations

from typing import Literal

import torch

from ._schedule import CosineLogSNRSchedule


class _Sampler:
    """Shared time grid handling."""

    def __init__(self, schedule: CosineLogSNRSchedule, n_steps: int = 50):
        if int(n_steps) < 1:
            msg = f"n_steps must be a positive integer, got {n_steps}."
            raise ValueError(msg)
        self.schedule = schedule
        self.n_steps = int(n_steps)

    def timesteps(self, device: torch.device | str = "cpu", start: float = 1.0) -> torch.Tensor:
        """``n_steps + 1`` times from ``start`` (1: pure noise) down to 0."""
        return torch.linspace(float(start), 0.0, self.n_steps + 1, device=device)

    def _coeffs(self, t: float | torch.Tensor, like: torch.Tensor):
        tt = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        return self.schedule.alpha_sigma(tt)

    def init_noise(
        self, shape: tuple[int, ...], generator: torch.Generator | None, device
    ) -> torch.Tensor:
        """Draw the initial state at ``t = 1``: standard Gaussian noise."""
        return torch.randn(shape, generator=generator, device=device)


class DDIMSampler(_Sampler):
    """Deterministic DDIM (η = 0): the same start noise always gives the same latent."""

    def step(
        self,
        z_t: torch.Tensor,
        z0_pred: torch.Tensor,
        t: float | torch.Tensor,
        s: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Move from time ``t`` to ``s < t``; ``generator`` is unused."""
        alpha_t, sigma_t = self._coeffs(t, z_t)
        alpha_s, sigma_s = self._coeffs(s, z_t)
        eps = (z_t - alpha_t * z0_pred) / sigma_t
        return alpha_s * z0_pred + sigma_s * eps


class DDPMSampler(_Sampler):
    """Ancestral DDPM: sample ``z_s ~ q(z_s | z_t, z0_pred)`` at every step."""

    def posterior(
        self, z_t: torch.Tensor, z0_pred: torch.Tensor, t, s
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of ``q(z_s | z_t, z_0 = z0_pred)``."""
        alpha_t, sigma_t = self._coeffs(t, z_t)
        alpha_s, sigma_s = self._coeffs(s, z_t)
        alpha_ts = alpha_t / alpha_s
        var_ts = sigma_t**2 - alpha_ts**2 * sigma_s**2
        mean = (alpha_ts * sigma_s**2 / sigma_t**2) * z_t + (
            alpha_s * var_ts / sigma_t**2
        ) * z0_pred
        var = var_ts * sigma_s**2 / sigma_t**2
        return mean, var

    def step(
        self,
        z_t: torch.Tensor,
        z0_pred: torch.Tensor,
        t: float | torch.Tensor,
        s: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Move from time ``t`` to ``s < t``, adding fresh noise (none at ``s = 0``)."""
        if float(s) <= 0.0:
            return z0_pred
        mean, var = self.posterior(z_t, z0_pred, t, s)
        noise = torch.randn(z_t.shape, generator=generator, device=z_t.device)
        return mean + var.clamp_min(0).sqrt() * noise


def make_sampler(
    name: Literal["ddim", "ddpm"], schedule: CosineLogSNRSchedule, n_steps: int
) -> DDIMSampler | DDPMSampler:
    """Build a sampler by name."""
    if name == "ddim":
        return DDIMSampler(schedule, n_steps)
    if name == "ddpm":
        return DDPMSampler(schedule, n_steps)
    msg = f"Unknown sampler={name!r}; use 'ddim' or 'ddpm'."
    raise ValueError(msg)
