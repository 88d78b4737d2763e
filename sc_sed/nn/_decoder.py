"""The autoregressive (feature index, value) decoder."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from sc_sed._defaults import MODULE_DEFAULTS as D
from sc_sed._vocab import TokenVocabulary

from ._attention import TransformerBlock
from ._decoding import decode
from ._embeddings import IndexEmbedding, ValueEmbedding, sinusoidal
from ._heads import make_index_head
from ._likelihoods import ValueHead, ValueLatentTerm, ValueLikelihood


class LatentTerms(NamedTuple):
    """What a row's latent contributes directly to the heads, computed once per row."""

    index: tuple[torch.Tensor, ...] | None  # the index head's context_terms
    features: torch.Tensor | None  # context features, for a "free" value latent term


class ARDecoder(nn.Module):
    """Causal Transformer over a row's pairs sorted by feature id, conditioned on ``z``.

    The input sequence is ``[START, (i_1, v_1), ..., (i_l, v_l)]``; at step ``t`` the
    decoder predicts the next feature id (or END) under a monotone mask and then, from
    the hidden state *and* the embedding of the chosen id, its value. ``z`` enters as
    ``n_memory`` memory tokens that every block cross-attends to, and is also added to
    every input token (so each position sees it without attending). A sinusoidal code of
    the step count is added to the inputs so the decoder knows how many entries it has
    emitted (the encoder, in contrast, has no position information).

    Parameters
    ----------
    n_features
        Number of features ``D``.
    n_latent
        Size of ``z``.
    n_hidden
        Model width.
    n_layers
        Transformer layers.
    n_heads
        Attention heads.
    n_ff
        Feed-forward width.
    dropout_rate
        Dropout rate.
    n_memory
        Number of memory tokens made from ``z``.
    index_head
        ``"flat"`` (O(D) per token) or ``"factorised"`` (O(√D) per token).
    block_size
        Block size of the factorised head (``None``: ``ceil(sqrt(D))``).
    value_likelihood
        Likelihood of the values, see :class:`~sc_sed.nn.ValueHead`.
    index_base
        Base of the sinusoidal feature-index code.
    learned_index_embedding
        Add a learned per-feature vector to the sinusoidal index code (see
        :class:`IndexEmbedding`).
    token_dropout
        Training-time probability of replacing an input pair by a learned mask token (its
        position is kept). This makes the decoder rely on ``z`` rather than on its own
        history alone ("word dropout"); 0 disables it.
    current_block_hazard
        Factorised head only: see :class:`~sc_sed.nn.FactorisedIndexHead`.
    context_width
        Width of the hidden layer on the index head's direct path from ``z`` to every
        feature's logit; 0 keeps that path linear (see the heads).
    context_rank
        Factorised head only: rank of that linear path's per-feature term (see
        :class:`~sc_sed.nn.FactorisedIndexHead`).
    value_latent_term
        ``"tied"`` or ``"free"``: the value head gets per-feature parameters (each
        feature's own location and dispersion offsets) and a term of the latent on each
        feature's location, tied to that feature's detection term in the index head or
        free (see :class:`ValueHead`); ``"none"``: neither.
    value_vocabulary, value_vocabulary_counts
        ``"categorical"`` values: the sorted distinct training values and their counts.
    value_max
        ``"logcount"`` values: the largest value the law can produce.

    Every default comes from :data:`sc_sed.model.MODULE_DEFAULTS`, as in
    :class:`~sc_sed.module.SEDModule`.
    """

    def __init__(
        self,
        n_features: int,
        n_latent: int,
        n_hidden: int = D.n_hidden,
        n_layers: int = D.n_layers,
        n_heads: int = D.n_heads,
        n_ff: int = D.n_ff,
        dropout_rate: float = D.dropout_rate,
        n_memory: int = D.n_memory,
        index_head: str = "flat",
        block_size: int | None = None,
        value_likelihood: ValueLikelihood = "ztnb",
        index_base: float = D.index_base,
        token_dropout: float = D.token_dropout,
        learned_index_embedding: bool = D.learned_index_embedding,
        current_block_hazard: bool = D.current_block_hazard,
        context_width: int = D.context_width,
        context_rank: int = D.context_rank,
        value_latent_term: ValueLatentTerm = D.value_latent_term,
        value_vocabulary: torch.Tensor | None = None,
        value_vocabulary_counts: torch.Tensor | None = None,
        value_max: float | None = None,
    ):
        super().__init__()
        self.n_features = n_features
        self.vocab = TokenVocabulary(n_features)
        self.token_dropout = token_dropout
        self.mask_token = nn.Parameter(torch.randn(n_hidden) * 0.02)
        self.n_hidden = n_hidden
        self.n_memory = n_memory
        self.index_embedding = IndexEmbedding(
            n_hidden, index_base, n_features if learned_index_embedding else None
        )
        self.value_embedding = ValueEmbedding(n_hidden)
        self.start_token = nn.Parameter(torch.randn(n_hidden) * 0.02)
        self.memory = nn.Linear(n_latent, n_memory * n_hidden)
        self.memory_norm = nn.LayerNorm(n_hidden)
        self.latent_input = nn.Linear(n_latent, n_hidden)
        self.blocks = nn.ModuleList(
            TransformerBlock(n_hidden, n_heads, n_ff, dropout_rate, cross_attention=True)
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(n_hidden)
        self.index_head = make_index_head(
            index_head, n_hidden, n_features, block_size, n_latent,
            current_block_hazard=current_block_hazard, context_width=context_width,
            context_rank=context_rank,
        )  # fmt: skip
        self.value_head = ValueHead(
            n_hidden,
            value_likelihood,
            n_features=n_features if value_latent_term != "none" else 0,
            latent_term=value_latent_term,
            n_context=self.index_head.n_context_features,
            vocabulary=value_vocabulary,
            vocabulary_counts=value_vocabulary_counts,
            max_value=value_max,
        )

    # -- embedding ---------------------------------------------------------------------
    def embed(
        self, index: torch.Tensor, value: torch.Tensor, step: torch.Tensor, z_in: torch.Tensor
    ) -> torch.Tensor:
        """Embed input tokens; every special id (START, END, PAD) is embedded as START.

        ``index``, ``value`` and ``step`` are ``(batch,)`` or ``(batch, length)``;
        ``z_in`` ``(batch, n_hidden)`` is the latent's input term (:attr:`latent_input`),
        added to every token.
        """
        is_pair = self.vocab.is_feature(index)
        safe = torch.where(is_pair, index, torch.zeros_like(index))
        pair = self.index_embedding(safe) + self.value_embedding(value)
        x = torch.where(is_pair.unsqueeze(-1), pair, self.start_token.expand_as(pair))
        if self.training and self.token_dropout > 0:
            drop = is_pair & (torch.rand(is_pair.shape, device=x.device) < self.token_dropout)
            x = torch.where(drop.unsqueeze(-1), self.mask_token.expand_as(x), x)
        z_in = z_in.reshape(z_in.shape[0], *([1] * (index.dim() - 1)), z_in.shape[-1])
        return x + sinusoidal(step, self.n_hidden) + z_in

    def latent_terms(self, z: torch.Tensor) -> LatentTerms:
        """Per-row terms of the latents ``(batch, [1, ...,] n_latent)`` for both heads."""
        head = self.index_head
        features = head.context_features(z) if self.value_head.latent_term == "free" else None
        return LatentTerms(head.context_terms(z), features)

    def value_params(
        self, h: torch.Tensor, feature: torch.Tensor, terms: LatentTerms
    ) -> torch.Tensor:
        """Raw value-law parameters for the chosen ``feature`` ids (valid ids only).

        ``terms`` are :meth:`latent_terms` of the rows' latents (one per row of
        ``feature``'s leading dimension).
        """
        embedding = self.index_embedding(feature)
        if self.value_head.latent_term == "tied":
            context = self.index_head.feature_terms(terms.index, feature)
        else:
            context = terms.features
        return self.value_head(h, embedding, feature, context)

    def make_memory(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, n_memory, n_hidden)`` memory tokens from ``z``."""
        return self.memory_norm(self.memory(z).view(z.shape[0], self.n_memory, self.n_hidden))

    def forward(self, z: torch.Tensor, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Hidden states of a full (teacher-forced) input sequence.

        Parameters
        ----------
        z
            ``(batch, n_latent)`` latents.
        index, value
            ``(batch, length)`` input tokens, starting with START.

        Returns
        -------
        ``(batch, length, n_hidden)``; position ``t`` depends only on inputs ``<= t``.
        """
        steps = torch.arange(index.shape[1], device=index.device).expand_as(index)
        x = self.embed(index, value, steps, self.latent_input(z))
        memory = self.make_memory(z)
        for block in self.blocks:
            x = block(x, causal=True, memory=memory)
        return self.norm(x)

    # -- training ----------------------------------------------------------------------
    def log_likelihood(
        self,
        z: torch.Tensor,
        index: torch.Tensor,
        value: torch.Tensor,
        allowed: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced per-token log-likelihood terms of framed token sequences.

        Parameters
        ----------
        z
            ``(batch, n_latent)`` latents.
        index, value
            ``(batch, length)`` framed tokens (see :mod:`sc_sed.data`).
        allowed
            ``(n_features,)`` bool mask of features that may be emitted.

        Returns
        -------
        Dict with ``index_logp`` and ``value_nll`` (``(batch, length - 1)``, zero where
        masked), ``target_mask`` (a real target: pair or END), ``pair_mask`` (a pair
        target) and ``index_correct`` (the teacher-forced argmax equals the target).
        """
        end = self.vocab.end
        inp_i, inp_v = index[:, :-1], value[:, :-1]
        tgt_i, tgt_v = index[:, 1:], value[:, 1:]
        h = self.forward(z, inp_i, inp_v)
        pair_mask = self.vocab.is_feature(tgt_i)
        target_mask = pair_mask | (tgt_i == end)
        target = torch.where(target_mask, tgt_i, end)
        last = torch.where(self.vocab.is_feature(inp_i), inp_i, -1)
        terms = self.latent_terms(z.unsqueeze(1))
        index_logp, guess = self.index_head.log_prob(
            h, target, last, allowed, return_argmax=True, context_terms=terms.index
        )
        params = self.value_params(h, torch.where(pair_mask, tgt_i, 0), terms)
        fill = self.value_head.fill_value
        value_nll = self.value_head.nll(params, torch.where(pair_mask, tgt_v, fill))
        return {
            "index_logp": torch.where(target_mask, index_logp, 0.0),
            "value_nll": torch.where(pair_mask, value_nll, 0.0),
            "target_mask": target_mask,
            "pair_mask": pair_mask,
            "index_correct": (guess == target) & target_mask,
        }

    # -- generation ---------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        max_length: int,
        *,
        allowed: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        static_shapes: bool = False,
        cuda_graph: bool = False,
        autocast_dtype: torch.dtype | None = None,
        check_every: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode (index, value) pairs for each latent, batched, until END or ``max_length``.

        Keys and values of earlier steps are cached, so a step costs O(current length). The
        decoding loop drives the decoder through its public parts only (:meth:`embed`, the
        Transformer ``blocks``, ``norm`` and the two heads).

        Parameters
        ----------
        z
            ``(batch, n_latent)`` latents.
        max_length
            Most pairs per row; a row reaching it ends there.
        allowed
            ``(n_features,)`` bool mask of features that may be emitted.
        generator
            Source of randomness (sampling of ids and values).
        temperature
            Softmax temperature of the index head.
        greedy
            Take the most likely id and a point estimate of the value at every step.
        static_shapes
            Fixed batch slots (finished rows are masked, not removed) and a KV cache
            preallocated at ``max_length``: every step has the same shapes. Slower on a
            CPU; the basis of ``cuda_graph``. Same result as the default path up to
            floating-point rounding.
        cuda_graph
            Capture one decoding step in a CUDA graph and replay it (implies
            ``static_shapes``; CUDA only). Sampling stays outside the graph.
        autocast_dtype
            Run the network under autocast in this dtype (e.g. ``torch.bfloat16`` on a
            GPU); None keeps the weights' dtype.
        check_every
            Steps between checks whether every row has finished (each check waits for the
            device). None: every step on a CPU (free there), every 16 steps elsewhere.

        Returns
        -------
        ``index`` ``(batch, L)`` (strictly increasing feature ids per row, then the PAD id
        ``n_features + 2``), ``value`` ``(batch, L)`` and ``n_nonzero`` ``(batch,)``, with
        ``L`` the longest generated row. The same ``generator`` state gives the same
        output on the same device with the same options.
        """
        return decode(
            self, z, max_length, allowed=allowed, generator=generator,
            temperature=temperature, greedy=greedy, static_shapes=static_shapes,
            cuda_graph=cuda_graph, autocast_dtype=autocast_dtype, check_every=check_every,
        )  # fmt: skip
