"""DenseDiffusionModule: SED's latent diffusion applied to the whole dense row (tensors only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sc_sed.module import LatentDiffusion


class DenseDiffusionModule(LatentDiffusion):
    """Diffusion on all ``D`` features of a row: the dense DDPM baseline.

    The "latent" of SED's diffusion is here the whole standardised, log-normalised row, so
    the same :class:`~sc_sed.module.LatentDiffusion` applies unchanged: cosine log-SNR
    schedule, x₀-prediction with truncated-SNR weighting, self-conditioning,
    classifier-free guidance, EMA weights and the DDPM/DDIM samplers, with
    :class:`~sc_sed.nn.LatentDenoiser` (``n_latent = D``) as the network. It is trained by
    :class:`~sc_sed.train.DiffusionTrainingPlan`, like SED's diffusion.

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
        if int(n_features) < 1:
            msg = f"n_features must be a positive integer, got {n_features}."
            raise ValueError(msg)
        super().__init__(
            int(n_features), n_cats_per_cond, widths, n_embed, dropout_rate,
            cond_dropout, self_cond_prob, logsnr_min, logsnr_max,
        )  # fmt: skip
        self.n_features = int(n_features)

    @property
    def device(self) -> torch.device:
        """Device of the module's parameters."""
        return self.latent_mean.device

    def set_feature_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store per-feature training mean/std of the normalised rows (see :meth:`set_stats`)."""
        self.set_stats(torch.as_tensor(np.asarray(mean)), torch.as_tensor(np.asarray(std)))
