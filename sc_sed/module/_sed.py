"""SEDModule: the tensors-only part of SED (encode, decode, diffusion loss, sampling)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from scvi.module.base import BaseModuleClass, LossOutput
from torch.distributions import Normal, kl_divergence

from sc_sed._defaults import MODULE_DEFAULTS as D
from sc_sed._docs import docs
from sc_sed._vocab import TokenVocabulary
from sc_sed.nn import ARDecoder, SetEncoder, SpectralFeatures, value_locations

from ._diffusion import LatentDiffusion

TOKENS_INDEX_KEY = "tokens_index"
TOKENS_VALUE_KEY = "tokens_value"


@docs.dedent
class SEDModule(BaseModuleClass):
    """Sparsity-Exploiting Diffusion on tensors: set encoder, AR decoder, latent diffusion.

    The latent diffusion lives in ``self.diffusion`` (a :class:`LatentDiffusion`).

    Built from integers only; knows nothing about AnnData. Rows arrive as framed
    (index, value) token tensors (see :func:`sc_sed.data.tokens_from_csr`). Every default
    comes from :data:`sc_sed.model.MODULE_DEFAULTS` (the encoder and decoder use the same).

    Parameters
    ----------
    n_features
        Number of features ``D``.
    max_nonzero
        Longest row the decoder generates.
    %(architecture)s
    index_head
        ``"flat"`` or ``"factorised"`` index head.
    block_size
        Block size of the factorised index head.
    value_likelihood
        ``"ztnb"``, ``"ztpoisson"``, ``"lognormal"``, ``"gaussian"``, ``"categorical"``
        or ``"logcount"`` (see :class:`~sc_sed.nn.ValueHead`).
    index_base
        Base of the sinusoidal feature-index code.
    token_dropout
        Training-time probability of masking a decoder input pair (see
        :class:`~sc_sed.nn.ARDecoder`), which makes the decoder use the latent.
    learned_index_embedding
        Add a learned per-feature vector to the fixed sinusoidal index code in the encoder
        and decoder (``n_features × n_hidden`` parameters each).
    encoder_size_features
        The encoder's head also reads each row's size (``log1p`` of its number of
        non-zeros and of its summed values; see :class:`~sc_sed.nn.SetEncoder`), which its
        masked mean cannot see.
    allowed_features
        ``(D,)`` bool: features the decoder may emit (``None``: all).
    detection_rate
        ``(D,)`` fraction of training rows in which each feature is non-zero; with
        ``hazard_init`` the index head starts as independent detections at these rates.
    hazard_init
        Initialise the index head's biases from ``detection_rate`` (see
        :meth:`~sc_sed.nn.FactorisedIndexHead.init_hazards`): training starts at the
        independent-detection likelihood (``benchmarks/summaries/bladder_start.json``).
    current_block_hazard
        Factorised head only: the block of the last emitted feature gets the probability
        that one of its *remaining* features is detected (an exact two-level hazard)
        instead of its whole-block logit.
    context_width
        Width of the hidden layer on the decoder's direct path from the latent to every
        feature (SiLU, like scVI's decoder), read by the index head's per-feature logits
        and, with a ``"free"`` value latent term, by the value head; 0 keeps that path
        linear (rank ``context_rank`` in the factorised head).
    context_rank
        Factorised head with ``context_width=0``: rank of the linear path from the latent
        to every feature's logit (``n_features × context_rank`` weights). At the bladder
        CPU preset 32 gave much better cells with one training seed and a decoder that
        ignored the latent with the other (``benchmarks/README.md``), so the default is 8.
    value_latent_term
        ``"tied"`` (default) or ``"free"``: per-feature value parameters (each feature's
        own location and dispersion offsets) and a term of the latent on each feature's
        location, tied to its detection term or free (see :class:`~sc_sed.nn.ValueHead`);
        ``"none"``: the value law depends on the row only through the hidden state.
    value_sums
        ``(n_detected, value_sum, log_value_sum)``, each ``(D,)``: the training rows'
        non-zero counts, value sums and log-value sums per feature; with a value latent
        term each feature's value law starts at the location they give
        (:func:`~sc_sed.nn.value_locations`).
    value_vocabulary, value_vocabulary_counts
        ``"categorical"`` only: the sorted distinct non-zero training values and how often
        each occurs (kept in the weights, so a loaded model generates the same values).
    value_max
        ``"logcount"`` only: the largest value the law can produce (kept in the weights).
    n_encoder_pcs
        The encoder also reads each row's scores on this many principal components of the
        training rows (:class:`~sc_sed.nn.SpectralFeatures`; fit them with
        ``encoder.spectral.set_components`` before training); 0 for none.
    spectral_transform
        Value transform before those components (``"lognorm"`` for counts).
    n_cats_per_cond
        Categories of each conditioning covariate of the diffusion.
    n_embed
        Noise-level/condition embedding width.
    denoiser_dropout
        Dropout in the denoiser.
    %(diffusion)s
    self_cond_prob
        Probability of self-conditioning in diffusion training.
    logsnr_min, logsnr_max
        Range of the cosine log-SNR schedule.
    """

    def __init__(
        self,
        n_features: int,
        max_nonzero: int,
        n_latent: int = D.n_latent,
        n_hidden: int = D.n_hidden,
        n_layers: int = D.n_layers,
        n_heads: int = D.n_heads,
        n_ff: int = D.n_ff,
        dropout_rate: float = D.dropout_rate,
        n_memory: int = D.n_memory,
        index_head: Literal["flat", "factorised"] = "flat",
        block_size: int | None = None,
        value_likelihood: str = "ztnb",
        index_base: float = D.index_base,
        kl_weight: float = D.kl_weight,
        token_dropout: float = D.token_dropout,
        learned_index_embedding: bool = D.learned_index_embedding,
        encoder_size_features: bool = D.encoder_size_features,
        allowed_features: torch.Tensor | None = None,
        detection_rate: torch.Tensor | None = None,
        hazard_init: bool = D.hazard_init,
        current_block_hazard: bool = D.current_block_hazard,
        context_width: int = D.context_width,
        context_rank: int = D.context_rank,
        value_latent_term: str = D.value_latent_term,
        value_sums: Sequence[torch.Tensor] | None = None,
        value_vocabulary: torch.Tensor | None = None,
        value_vocabulary_counts: torch.Tensor | None = None,
        value_max: float | None = None,
        n_encoder_pcs: int = 0,
        spectral_transform: str = "lognorm",
        n_cats_per_cond: Sequence[int] = (),
        denoiser_widths: Sequence[int] = D.denoiser_widths,
        n_embed: int = D.n_embed,
        denoiser_dropout: float = D.denoiser_dropout,
        cond_dropout: float = D.cond_dropout,
        self_cond_prob: float = D.self_cond_prob,
        logsnr_min: float = D.logsnr_min,
        logsnr_max: float = D.logsnr_max,
    ):
        super().__init__()
        self.n_features = n_features
        self.max_nonzero = max_nonzero
        self.n_latent = n_latent
        self.vocab = TokenVocabulary(n_features)
        self.kl_weight = kl_weight
        spectral = (
            SpectralFeatures(n_features, n_encoder_pcs, spectral_transform)
            if n_encoder_pcs
            else None
        )
        self.encoder = SetEncoder(
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            n_heads=n_heads,
            n_ff=n_ff,
            dropout_rate=dropout_rate,
            index_base=index_base,
            n_features=n_features if learned_index_embedding else None,
            size_features=encoder_size_features,
            spectral=spectral,
        )
        self.decoder = ARDecoder(
            n_features=n_features,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            n_heads=n_heads,
            n_ff=n_ff,
            dropout_rate=dropout_rate,
            n_memory=n_memory,
            index_head=index_head,
            block_size=block_size,
            value_likelihood=value_likelihood,
            index_base=index_base,
            token_dropout=token_dropout,
            learned_index_embedding=learned_index_embedding,
            current_block_hazard=current_block_hazard,
            context_width=context_width,
            context_rank=context_rank,
            value_latent_term=value_latent_term,
            value_vocabulary=value_vocabulary,
            value_vocabulary_counts=value_vocabulary_counts,
            value_max=value_max,
        )
        if hazard_init and detection_rate is not None:
            self.decoder.index_head.init_hazards(detection_rate)
        if value_latent_term != "none" and value_sums is not None:
            location = value_locations(value_likelihood, *value_sums)
            self.decoder.value_head.init_locations(location)
        self.diffusion = LatentDiffusion(
            n_latent=n_latent,
            n_cats_per_cond=n_cats_per_cond,
            widths=denoiser_widths,
            n_embed=n_embed,
            dropout_rate=denoiser_dropout,
            cond_dropout=cond_dropout,
            self_cond_prob=self_cond_prob,
            logsnr_min=logsnr_min,
            logsnr_max=logsnr_max,
        )
        if allowed_features is None:
            allowed_features = torch.ones(n_features, dtype=torch.bool)
        self.register_buffer(
            "allowed_features", torch.as_tensor(allowed_features, dtype=torch.bool)
        )

    # -- scvi-tools module contract (autoencoder stage) ---------------------------------
    def _get_inference_input(
        self, tensors: dict[str, torch.Tensor], **kwargs
    ) -> dict[str, torch.Tensor]:
        return {"index": tensors[TOKENS_INDEX_KEY], "value": tensors[TOKENS_VALUE_KEY]}

    def _get_generative_input(self, tensors, inference_outputs) -> dict[str, torch.Tensor]:
        return {
            "z": inference_outputs["z"],
            "index": tensors[TOKENS_INDEX_KEY],
            "value": tensors[TOKENS_VALUE_KEY],
        }

    def inference(self, index: torch.Tensor, value: torch.Tensor) -> dict:
        """Encode framed tokens: the posterior ``qz`` (a Normal) and a sample ``z``.

        ``z`` is a reparameterised sample in training mode and the posterior mean otherwise.
        """
        mu, logvar = self.encoder(index, value, self.vocab.is_feature(index))
        qz = Normal(mu, torch.exp(0.5 * logvar))
        return {"qz": qz, "z": qz.rsample() if self.training else mu}

    def generative(
        self, z: torch.Tensor, index: torch.Tensor, value: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced decoder log-likelihood terms (see :meth:`ARDecoder.log_likelihood`)."""
        return self.decoder.log_likelihood(z, index, value, self.allowed_features)

    def loss(self, tensors, inference_outputs, generative_outputs) -> LossOutput:
        """Index cross-entropy + value NLL + β·KL, normalised per target token."""
        gen = generative_outputs
        qz = inference_outputs["qz"]
        kl = kl_divergence(qz, Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))).sum(-1)
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
        mu, _ = self.encoder(index, value, self.vocab.is_feature(index))
        return mu

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        max_length: int | None = None,
        **decode_options: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode latents into (index, value) pairs; see :meth:`ARDecoder.generate`.

        ``decode_options`` (``static_shapes``, ``cuda_graph``, ``autocast_dtype``,
        ``check_every``) reach :meth:`ARDecoder.generate` unchanged.
        """
        return self.decoder.generate(
            z,
            max_length or self.max_nonzero,
            allowed=self.allowed_features,
            generator=generator,
            temperature=temperature,
            greedy=greedy,
            **decode_options,
        )

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        *,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        n_steps: int = 50,
        guidance: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        start: torch.Tensor | None = None,
        strength: float = 1.0,
        **decode_options: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generate rows: latents by reverse diffusion, then decoded into (index, value) pairs.

        Parameters
        ----------
        cond
            ``(n, n_conds)`` condition codes, one row per generated row.
        sampler, n_steps, guidance, start, strength
            See :meth:`LatentDiffusion.sample` (``start``: latents to edit, SDEdit-style).
        generator
            Source of every random draw (diffusion and decoding).
        temperature, greedy
            See :meth:`decode`.
        **decode_options
            Decoding options of :meth:`ARDecoder.generate` (e.g. ``cuda_graph=True``,
            ``autocast_dtype=torch.bfloat16`` on a GPU).

        Returns
        -------
        ``index``, ``value`` and ``n_nonzero`` as from :meth:`decode`.
        """
        z = self.diffusion.sample(
            cond, sampler=sampler, n_steps=n_steps, guidance=guidance, generator=generator,
            start=start, strength=strength,
        )  # fmt: skip
        return self.decode(
            z, generator=generator, temperature=temperature, greedy=greedy, **decode_options
        )
