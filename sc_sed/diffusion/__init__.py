"""Latent diffusion: the noise schedule and the DDPM/DDIM samplers."""

from ._samplers import DDIMSampler, DDPMSampler, make_sampler
from ._schedule import CosineLogSNRSchedule

__all__ = ["CosineLogSNRSchedule", "DDIMSampler", "DDPMSampler", "make_sampler"]
