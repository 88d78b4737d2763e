"""SEDModule: the tensors-only part of SED (encode, decode, diffusion loss, sampling)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
from scvi.module.base import BaseModuleClass, LossOutput

from sc_sed.diffusion import CosineLogSNRSchedule, make_sampler
from sc_sed.nn import ARDecoder, LatentDenoiser, SetEncoder

TOKENS_INDEX_KEY = "tokens_index"
TOKENS_VALUE_KEY = "tokens_value"
CONDITION_KEY = "condition"


class SEDModule(BaseModuleClass):
    """Sparsity-Exploiting Diffusion on tensors: set encoder, AR decoder, latent diffusion.

    Built from integers only; knows nothing about AnnData. Rows arrive as framed
    (index, value) token tensors (see :func:`sc_sed.data.tokens_from_csr`).

    Parameters
    ----------
    n_features
        Number of features ``D``.
    max_nonzero
        Longest row the decoder generates.
    n_latent
        Latent size.
    n_hidden
        Transformer width.
    n_layers
        Transformer layers of the encoder and of the decoder.
    n_heads
        Attention heads.
    n_ff
        Feed-forward width.
    dropout_rate
        Transformer dropout.
    n_memory
        Memory tokens made from ``z`` for the decoder's cross-attention.
    index_head
        ``"flat"`` or ``"factorised"`` index head.
    block_size
        Block size of the factorised index head.
    value_likelihood
        ``"ztnb"``, ``"ztpoisson"``, ``"lognormal"`` or ``"gaussian"``.
    index_base
        Base of the sinusoidal feature-index code.
    kl_weight
        β of the autoencoder's KL term.
    allowed_features
        ``(D,)`` bool: features the decoder may emit (``None``: all).
    n_cats_per_cond
        Categories of each conditioning covariate of the diffusion.
    denoiser_widths
        Widths of the MLP U-Net.
    n_embed
        Noise-level/condition embedding width.
    denoiser_dropout
        Dropout in the denoiser.
    cond_dropout
        Probability of dropping each condition in diffusion training (classifier-free
        guidance).
    self_cond_prob
        Probability of self-conditioning in diffusion training.
    logsnr_min, logsnr_max
        Range of the cosine log-SNR schedule.
    """

    def __init__(
        self,
        n_features: int,
        max_nonzero: int,
        n_latent: int = 64,
        n_hidden: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        n_ff: int = 256,
        dropout_rate: float = 0.1,
        n_memory: int = 4,
        index_head: Literal["flat", "factorised"] = "flat",
        block_size: int | None = None,
        value_likelihood: str = "ztnb",
        index_base: float = 10_000.0,
        kl_weight: float = 1e-6,
        allowed_features: torch.Tensor | None = None,
        n_cats_per_cond: Sequence[int] = (),
        denoiser_widths: Sequence[int] = (512, 512, 256, 128),
        n_embed: int = 128,
        denoiser_dropout: float = 0.0,
        cond_dropout: float = 0.1,
        self_cond_prob: float = 0.5,
        logsnr_min: float = -15.0,
        logsnr_max: float = 15.0,
    ):
        super().__init__()
        self.n_features = n_features
        self.max_nonzero = max_nonzero
        self.n_latent = n_latent
        self.kl_weight = kl_weight
        self.cond_dropout = cond_dropout
        self.self_cond_prob = self_cond_prob
        self.n_cats_per_cond = list(n_cats_per_cond)
        self.encoder = SetEncoder(
            n_latent, n_hidden, n_layers, n_heads, n_ff, dropout_rate, index_base
        )
        self.decoder = ARDecoder(
            n_features, n_latent, n_hidden, n_layers, n_heads, n_ff, dropout_rate,
            n_memory, index_head, block_size, value_likelihood, index_base,
        )  # fmt: skip
        self.denoiser = LatentDenoiser(
            n_latent, denoiser_widths, n_cats_per_cond, n_embed, denoiser_dropout
        )
        self.ema_denoiser = copy.deepcopy(self.denoiser).requires_grad_(False)
        self.schedule = CosineLogSNRSchedule(logsnr_min, logsnr_max)
        if allowed_features is None:
            allowed_features = torch.ones(n_features, dtype=torch.bool)
        self.register_buffer("allowed_features", torch.as_tensor(allowed_features, dtype=torch.bool))
        self.register_buffer("latent_mean", torch.zeros(n_latent))
        self.register_buffer("latent_std", torch.ones(n_latent))

    # -- scvi-tools module contract (autoencoder stage) ---------------------------------
    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"index": tensors[TOKENS_INDEX_KEY], "value": tensors[TOKENS_VALUE_KEY]}

    def _get_generative_input(self, tensors, inference_outputs) -> dict[str, torch.Tensor]:
        return {
            "z": inference_outputs["z"],
            "index": tensors[TOKENS_INDEX_KEY],
            "value": tensors[TOKENS_VALUE_KEY],
        }

    def inference(self, index: torch.Tensor, value: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode framed tokens: ``qz_m``, ``qz_logvar`` and a reparameterised sample ``z``."""
        mu, logvar = self.encoder(index, value, index < self.n_features)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return {"qz_m": mu, "qz_logvar": logvar, "z": z}

    def generative(
        self, z: torch.Tensor, index: torch.Tensor, value: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced decoder log-likelihood terms (see :meth:`ARDecoder.log_likelihood`)."""
        return self.decoder.log_likelihood(z, index, value, self.allowed_features)

    def loss(self, tensors, inference_outputs, generative_outputs) -> LossOutput:
        """Index cross-entropy + value NLL + β·KL, normalised per target token."""
        gen = generative_outputs
        mu, logvar = inference_outputs["qz_m"], inference_outputs["qz_logvar"]
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(-1)
        index_nll = -gen["index_logp"].sum(-1)
        value_nll = gen["value_nll"].sum(-1)
        n_targets = gen["target_mask"].sum().clamp_min(1)
        n_pairs = gen["pair_mask"].sum().clamp_min(1)
        total = (index_nll.sum() + value_nll.sum() + self.kl_weight * kl.sum()) / n_targets
        return LossOutput(
            loss=total,
            reconstruction_loss={"index_nll": index_nll, "value_nll": value_nll},
            kl_local=kl,
            extra_metrics={
                "index_accuracy": gen["index_correct"].sum() / n_targets,
                "index_nll_per_token": index_nll.sum() / n_targets,
                "value_nll_per_pair": value_nll.sum() / n_pairs,
            },
        )

    # -- encode / decode -----------------------------------------------------------------
    @torch.no_grad()
    def encode(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Posterior means of framed token rows."""
        mu, _ = self.encoder(index, value, index < self.n_features)
        return mu

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        use_cache: bool = True,
        max_length: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode latents into (index, value) pairs; see :meth:`ARDecoder.generate`."""
        return self.decoder.generate(
            z,
            max_length or self.max_nonzero,
            allowed=self.allowed_features,
            generator=generator,
            temperature=temperature,
            greedy=greedy,
            use_cache=use_cache,
        )

    # -- latent diffusion ------------------------------------------------------------------
    def set_latent_stats(self, z: torch.Tensor) -> None:
        """Store the mean/std of training latents used to standardise them for diffusion."""
        self.latent_mean.copy_(z.mean(0))
        self.latent_std.copy_(z.std(0).clamp_min(1e-4))

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        """Map encoder latents to the standardised diffusion space."""
        return (z - self.latent_mean) / self.latent_std

    def unstandardise(self, z: torch.Tensor) -> torch.Tensor:
        """Map diffusion samples back to encoder-latent space."""
        return z * self.latent_std + self.latent_mean

    def _drop_conditions(self, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[1] == 0 or self.cond_dropout <= 0:
            return cond
        null = self.denoiser.null_condition(cond.shape[0], cond.device)
        drop = torch.rand(cond.shape, device=cond.device) < self.cond_dropout
        return torch.where(drop, null, cond)

    def diffusion_loss(self, z0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x₀-prediction loss on standardised latents ``z0`` with condition codes ``cond``.

        Times are uniform on [0, 1]; the squared error is weighted by ``max(SNR, 1)``
        (truncated-SNR weighting). With probability ``self_cond_prob`` the denoiser first
        predicts x₀ without gradient and sees that estimate as self-conditioning input.
        """
        t = torch.rand(z0.shape[0], device=z0.device)
        noise = torch.randn_like(z0)
        z_t = self.schedule.add_noise(z0, t, noise)
        logsnr = self.schedule.logsnr(t)
        cond = self._drop_conditions(cond)
        self_cond = torch.zeros_like(z0)
        if torch.rand(()) < self.self_cond_prob:
            with torch.no_grad():
                self_cond = self.denoiser(z_t, logsnr, self_cond, cond)
        pred = self.denoiser(z_t, logsnr, self_cond, cond)
        weight = torch.exp(logsnr).clamp_min(1.0).clamp_max(1e4)
        return (weight * ((pred - z0) ** 2).mean(-1)).mean()

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
            torch.cat(variants, dim=0),
        ).chunk(k + 1)
        out = preds[0]
        for j, w in enumerate(guidance, start=1):
            out = out + w * (preds[j] - preds[j - 1])
        return out

    @torch.no_grad()
    def sample_latents(
        self,
        cond: torch.Tensor,
        *,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        n_steps: int = 50,
        guidance: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample encoder-space latents by reverse diffusion with the EMA denoiser.

        Parameters
        ----------
        cond
            ``(n, n_conds)`` condition codes (one row per latent to sample).
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
        ``(n, n_latent)`` latents in encoder space (un-standardised).
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

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema ← decay·ema + (1 − decay)·weights`` for the denoiser."""
        for ema, p in zip(self.ema_denoiser.parameters(), self.denoiser.parameters(), strict=True):
            ema.lerp_(p.detach(), 1.0 - decay)
        for ema, b in zip(self.ema_denoiser.buffers(), self.denoiser.buffers(), strict=True):
            ema.copy_(b)
