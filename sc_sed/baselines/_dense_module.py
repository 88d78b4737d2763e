"""DenseDiffusionModule: SED's latent diffusion applied to the whole dense row (tensors only)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sc_sed.diffusion import CosineLogSNRSchedule
from sc_sed.module import SEDModule
from sc_sed.nn import LatentDenoiser


class DenseDiffusionModule(nn.Module):
    """Diffusion on all ``D`` features of a row: the dense DDPM baseline.

    The "latent" of SED's diffusion is here the whole standardised, log-normalised row, so
    the same machinery applies unchanged: cosine log-SNR schedule, x₀-prediction with
    truncated-SNR weighting, self-conditioning, classifier-free guidance, EMA weights and
    the DDPM/DDIM samplers, with :class:`~sc_sed.nn.LatentDenoiser` (``n_latent = D``) as
    the network. The loss and sampling methods *are* SED's
    (:meth:`SEDModule.diffusion_loss <sc_sed.module.SEDModule.diffusion_loss>`,
    :meth:`~sc_sed.module.SEDModule.sample_latents`, …), shared rather than copied, so
    the two models differ only in what they diffuse. Any such module can be trained by
    :class:`~sc_sed.train.DiffusionTrainingPlan`.

    Every training and sampling tensor is ``(batch, D)``: dense is what this baseline is.

    Parameters
    ----------
    n_features
        Number of features ``D``.
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
        n_features: int,
        *,
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
        if int(n_features) < 1:
            msg = f"n_features must be a positive integer, got {n_features}."
            raise ValueError(msg)
        self.n_features = int(n_features)
        self.n_latent = self.n_features  # the name SED's shared diffusion methods read
        self.n_cats_per_cond = list(n_cats_per_cond)
        self.cond_dropout = cond_dropout
        self.self_cond_prob = self_cond_prob
        self.denoiser = LatentDenoiser(
            self.n_features, widths, self.n_cats_per_cond, n_embed, dropout_rate
        )
        self.ema_denoiser = copy.deepcopy(self.denoiser).requires_grad_(False)
        self.schedule = CosineLogSNRSchedule(logsnr_min, logsnr_max)
        self.register_buffer("latent_mean", torch.zeros(self.n_features))
        self.register_buffer("latent_std", torch.ones(self.n_features))

    @property
    def device(self) -> torch.device:
        """Device of the module's parameters."""
        return self.latent_mean.device

    def set_feature_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store per-feature training mean/std (``std`` is floored at 1e-4, as in SED).

        Parameters
        ----------
        mean, std
            ``(n_features,)`` statistics of the normalised training rows.
        """
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        if mean.shape != (self.n_features,) or std.shape != (self.n_features,):
            msg = f"mean and std must have shape ({self.n_features},), got {tuple(mean.shape)} and {tuple(std.shape)}."
            raise ValueError(msg)
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std.clamp_min(1e-4))

    # SED's latent-diffusion methods, shared (same functions, not copies): they only read
    # denoiser, ema_denoiser, schedule, n_latent, cond_dropout, self_cond_prob and the
    # latent_mean/latent_std buffers, which this module defines with the same meaning.
    _drop_conditions = SEDModule._drop_conditions
    diffusion_loss = SEDModule.diffusion_loss
    guided_x0 = SEDModule.guided_x0
    sample_latents = SEDModule.sample_latents
    update_ema = SEDModule.update_ema
    standardise = SEDModule.standardise
    unstandardise = SEDModule.unstandardise
