"""Index heads: the distribution of the next feature id (or END) under a monotone mask.

A decoded row lists its non-zero features in strictly increasing order, so after emitting
feature ``last`` the only valid continuations are features ``j > last`` that are allowed
(seen in training, by default) and END (id ``n_features``). Invalid ids get probability
zero, so every sampled row has strictly increasing, unique indices by construction.

The heads use a **hazard** (sequential Bernoulli) parameterisation: the network gives
each feature a logit ``s_j`` and the next id is the first valid ``j > last`` whose coin
``Bernoulli(sigmoid(s_j))`` comes up, END if none does::

    P(next = j) = sigmoid(s_j) · Π_{last < k < j, valid} (1 − sigmoid(s_k))
    P(END)      = Π_{k > last, valid} (1 − sigmoid(s_k))

With history-independent logits this is exactly a product of independent Bernoulli
detections (the usual single-cell dropout picture), which the decoder refines with the
history; a softmax over absolute ids would have to learn the cumulative products itself.

Both heads also take a per-row ``context`` (the latent ``z``) that adds a feature-specific
term to the logits, a direct path from the latent to "which features are present".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sc_sed._validation import check_int

from ._numeric import log1mexp

NEG_INF = float("-inf")


def gumbel_argmax(
    logits: torch.Tensor, generator: torch.Generator | None, temperature: float, greedy: bool
) -> torch.Tensor:
    """Sample from ``softmax(logits / temperature)`` with the Gumbel-max trick (argmax if greedy)."""
    if greedy or temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_min(1e-20)
    gumbel = -torch.log((-torch.log(u)).clamp_min(1e-20))
    return (logits / temperature + gumbel).argmax(-1)


def _log_fail(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``log(1 - sigmoid(logits))`` at valid positions, 0 (a sure "no") elsewhere, in float32."""
    return torch.where(valid, F.logsigmoid(-logits.float()), 0.0)


def hazard_log_probs(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of "first success" among ``valid`` positions, plus "none" last.

    Parameters
    ----------
    logits
        ``(..., n)`` hazard logits, in order.
    valid
        ``(..., n)`` bool: positions that may be chosen (others are skipped).

    Returns
    -------
    ``(..., n + 1)``: ``log P(first success at j)`` (``-inf`` where invalid) and, last,
    ``log P(no success)``.
    """
    log_fail = _log_fail(logits, valid)  # float32: cumulative sums under mixed precision
    # log sigmoid(s) = log sigmoid(-s) + s: one transcendental pass instead of two
    log_succ = torch.where(valid, log_fail + logits.float(), NEG_INF)
    survival = torch.cumsum(log_fail, dim=-1)
    return torch.cat([log_succ + survival - log_fail, survival[..., -1:]], dim=-1)


def hazard_sample(
    logits: torch.Tensor,
    valid: torch.Tensor,
    generator: torch.Generator | None,
    *,
    at_least_one: bool = False,
) -> torch.Tensor:
    """Draw the first success of the hazard by inversion: one uniform per row.

    ``log S_j = Σ_{k <= j, valid} log(1 - sigmoid(s_k))`` is the log-probability that no
    coin up to ``j`` came up; the first success is the first ``j`` with ``S_j < u`` for
    ``u ~ U(0, 1)``, so it is the number of positions with ``S_j >= u``. This has exactly
    the distribution of :func:`hazard_log_probs` without its ``(..., n)`` logs, uniforms
    and argmax.

    Parameters
    ----------
    logits, valid
        As for :func:`hazard_log_probs`.
    generator
        Source of randomness.
    at_least_one
        Condition on some success (the factorised head's offset level): the position is
        the first ``j`` with ``1 - S_j > u (1 - S_n)``. Rows without a valid position
        give an arbitrary position (callers ignore them).

    Returns
    -------
    ``(...)`` long: the position, ``n`` meaning "none" (only without ``at_least_one``).
    """
    log_survival = torch.cumsum(_log_fail(logits, valid), dim=-1)
    u = torch.rand(log_survival.shape[:-1], generator=generator, device=logits.device)
    log_u = torch.log(u.clamp_min(1e-30)).unsqueeze(-1)
    if not at_least_one:
        return (log_survival >= log_u).sum(-1)
    # log(1 - S_j); exactly -inf before the first valid position (S_j = 1)
    log_hit = torch.log(-torch.expm1(log_survival))
    threshold = log_u + log_hit[..., -1:]
    return (log_hit <= threshold).sum(-1).clamp_max(logits.shape[-1] - 1)


def _rate_logit(rate: torch.Tensor) -> torch.Tensor:
    """``logit`` of rates clamped to ``[1e-4, 1 - 1e-4]`` (hazard-bias initialisation)."""
    return torch.logit(torch.as_tensor(rate, dtype=torch.float32).clamp(1e-4, 1 - 1e-4))


def _gather_last(logp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``logp[..., target]`` for one target per row."""
    return logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)


def _draw(logits, valid, generator, temperature, greedy, *, at_least_one=False):
    """One id per row from a hazard: by inversion at temperature 1, Gumbel-max otherwise."""
    if greedy or temperature != 1.0:
        logp = hazard_log_probs(logits, valid)
        if at_least_one:
            logp = _condition_on_success(logp, valid)
        return gumbel_argmax(logp, generator, temperature, greedy)
    return hazard_sample(logits, valid, generator, at_least_one=at_least_one)


def _condition_on_success(logp: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Drop "none" and renormalise; rows without a valid position get finite dummies."""
    has_valid_position = valid.any(-1, keepdim=True)
    norm = log1mexp(torch.where(has_valid_position, logp[..., -1:], -1.0))
    return torch.where(has_valid_position, logp[..., :-1] - norm, 0.0)


class IndexHead(nn.Module):
    """Interface of the index heads (see the module docstring).

    Subclasses implement :meth:`prepare` (tensors that depend only on ``allowed``, built
    once per decoding call), :meth:`log_prob` (training) and :meth:`sample` (decoding).
    """

    n_features: int
    #: Size of :meth:`context_features` (0 without a context).
    n_context_features: int = 0

    def context_features(self, context: torch.Tensor | None) -> torch.Tensor | None:
        """Per-row features of the context that the per-feature context weights read.

        ``(..., n_context_features)``: the hidden layer's output with ``context_width``,
        else the context's linear map (factorised head) or the context itself (flat head).
        Other heads of the decoder (the value head) can read the same features, so one
        representation of the row serves "which features" and "how much of each".
        None without a context.
        """
        raise NotImplementedError

    def context_terms(self, context: torch.Tensor | None) -> tuple[torch.Tensor, ...] | None:
        """Per-row terms of the context (latent) on the logits; constant over a decoded row.

        Decoding computes them once per call (and keeps them through compaction) and passes
        them to :meth:`sample` as ``context_terms``.
        """
        raise NotImplementedError

    def prepare(self, allowed: torch.Tensor | None, device: torch.device) -> Any:
        """Build per-call lookup tables of the allowed features (pass them to :meth:`sample`)."""
        raise NotImplementedError

    def log_probs(
        self,
        h: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(..., D + 1)`` log-probabilities of every next id (END last); see :meth:`log_prob`."""
        raise NotImplementedError

    def log_prob(
        self,
        h: torch.Tensor,
        target: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        *,
        return_argmax: bool = False,
        context_terms: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``target`` ids.

        Parameters
        ----------
        h
            ``(..., n_hidden)`` hidden states.
        target
            ``(...)`` ids in ``[0, D]`` (``D`` = END).
        last
            ``(...)`` previously emitted id (``-1`` before the first).
        allowed
            ``(D,)`` bool mask of features that may be emitted, or None for all.
        context
            Per-row context (the latent), broadcastable to ``h``'s leading dimensions
            (e.g. ``(batch, 1, n_context)`` for ``(batch, length, n_hidden)`` states).
        return_argmax
            Also return the most likely id (for accuracy monitoring).
        context_terms
            The result of :meth:`context_terms` (replaces ``context``; lets a caller that
            also needs them compute them once).

        Returns
        -------
        ``(...)`` log-probabilities (and the argmax ids).
        """
        raise NotImplementedError

    def feature_terms(
        self, context_terms: tuple[torch.Tensor, ...] | None, feature: torch.Tensor
    ) -> torch.Tensor | None:
        """Each row's latent term on the logit of the chosen ``feature`` ids.

        The part of :meth:`context_terms` that belongs to one feature (without its bias):
        how much the row's latent raises or lowers that feature's detection hazard. The
        value head reads it to tie "how much of a feature" to "whether it is there".

        Parameters
        ----------
        context_terms
            :meth:`context_terms` of ``(batch, ...)`` contexts (one per row).
        feature
            ``(batch, ...)`` valid feature ids (``< n_features``).

        Returns
        -------
        ``feature``-shaped terms, or None without a context.
        """
        raise NotImplementedError

    def sample(
        self,
        h: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        tables: Any = None,
        context_terms: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """Draw the next id for each row (``D`` = END).

        See :meth:`log_prob` for the arguments; ``tables`` is the result of
        :meth:`prepare` for ``allowed`` (built here when None), ``context_terms`` that of
        :meth:`context_terms` (replaces ``context``). At temperature 1 the id
        is drawn by inversion (:func:`hazard_sample`), otherwise from
        ``softmax(log p / temperature)``; ``greedy`` takes the most likely id.
        """
        raise NotImplementedError


class FlatIndexHead(IndexHead):
    """Hazard over all ``n_features`` ids (END = none chosen): O(D) work per token.

    Parameters
    ----------
    n_hidden
        Width of the decoder hidden state.
    n_features
        Number of features ``D``; END is id ``D``.
    n_context
        Size of the per-row context (the latent); 0 for none.
    context_width
        0: the context's term is linear in it (``n_features × n_context`` weights). Above
        0: the context first goes through a hidden layer of this width (SiLU), like
        scVI's decoder, and the per-feature weights (zero at the start) read that layer.
    """

    def __init__(self, n_hidden: int, n_features: int, n_context: int = 0, context_width: int = 0):
        super().__init__()
        self.n_features = n_features
        self.proj = nn.Linear(n_hidden, n_features)
        self.context_width = context_width if n_context else 0
        self.context_proj = None
        if n_context and context_width:
            hidden = _context_layer(n_context, context_width)  # checks the width
            out = nn.Linear(context_width, n_features, bias=False)
            nn.init.zeros_(out.weight)
            self.context_proj = nn.Sequential(hidden, out)
        elif n_context:
            self.context_proj = nn.Linear(n_context, n_features, bias=False)
        self.n_context_features = self.context_width or n_context

    @torch.no_grad()
    def init_hazards(self, rate: torch.Tensor) -> None:
        """Start from independent detections: bias of feature ``j`` = ``logit(rate_j)``.

        With these biases and zero weights the head is the product of independent
        Bernoulli(``rate_j``) detections, the usual single-cell dropout picture.
        """
        self.proj.bias.copy_(_rate_logit(rate).to(self.proj.bias.device))

    def prepare(self, allowed: torch.Tensor | None, device: torch.device) -> _FlatTables:
        """Build the feature ids and the allowed mask on ``device``."""
        ids = torch.arange(self.n_features, device=device)
        return _FlatTables(ids, None if allowed is None else allowed.to(device))

    def context_features(self, context: torch.Tensor | None) -> torch.Tensor | None:
        """Return the hidden layer's output (``context_width``) or the context itself; see :class:`IndexHead`."""
        if self.context_proj is None or context is None:
            return None
        return self.context_proj[0](context) if self.context_width else context

    def context_terms(self, context: torch.Tensor | None) -> tuple[torch.Tensor, ...] | None:
        """``(context_proj(context),)``, or None without a context; see :class:`IndexHead`."""
        features = self.context_features(context)
        if features is None:
            return None
        out = self.context_proj[1] if self.context_width else self.context_proj
        return (out(features),)

    def _logits_and_valid(self, h, last, tables, terms):
        valid = tables.ids > last.unsqueeze(-1)
        if tables.allowed is not None:
            valid = valid & tables.allowed
        logits = self.proj(h)
        if terms is not None:
            logits = logits + terms[0]
        return logits, valid

    def log_probs(
        self,
        h: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        *,
        context_terms: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """``(..., D + 1)`` log-probabilities of every id (``-inf`` where invalid)."""
        tables = self.prepare(allowed, h.device)
        terms = self.context_terms(context) if context_terms is None else context_terms
        logits, valid = self._logits_and_valid(h, last, tables, terms)
        return hazard_log_probs(logits, valid)

    def log_prob(
        self, h, target, last, allowed=None, context=None, *, return_argmax=False,
        context_terms=None,
    ):  # fmt: skip
        """Log-probability of ``target`` ids; see :meth:`IndexHead.log_prob`."""
        logp = self.log_probs(h, last, allowed, context, context_terms=context_terms)
        target_logp = _gather_last(logp, target)
        return (target_logp, logp.argmax(-1)) if return_argmax else target_logp

    def feature_terms(self, context_terms, feature):
        """Return the latent's term of each chosen feature; see :meth:`IndexHead.feature_terms`."""
        if context_terms is None:
            return None
        return _gather_features(context_terms[0], feature)

    def sample(
        self, h, last, allowed=None, context=None, *,
        generator=None, temperature=1.0, greedy=False, tables=None, context_terms=None,
    ):  # fmt: skip
        """Draw the next id for each row (``D`` = END); see :meth:`IndexHead.sample`."""
        tables = self.prepare(allowed, h.device) if tables is None else tables
        terms = self.context_terms(context) if context_terms is None else context_terms
        logits, valid = self._logits_and_valid(h, last, tables, terms)
        return _draw(logits, valid, generator, temperature, greedy)


class _FlatTables(NamedTuple):
    ids: torch.Tensor  # (D,) feature ids
    allowed: torch.Tensor | None  # (D,) bool


class _FactorisedTables(NamedTuple):
    allowed: torch.Tensor  # (n_blocks, block_size) bool; ids past D are False
    block_last_id: torch.Tensor  # (n_blocks,) highest allowed id per block (-1: none)
    offsets: torch.Tensor  # (block_size,) 0 .. block_size - 1


class FactorisedIndexHead(IndexHead):
    """Two-level hazard: the block holding the next id (or END), then the offset in it.

    Blocks hold ``block_size`` consecutive ids.

    With ``block_size ≈ sqrt(D)`` each token costs O(√D) instead of O(D). The monotone
    mask holds at both levels: a block is valid if it has an allowed id greater than
    ``last``; inside the chosen block only allowed offsets past ``last`` are valid, and
    the within-block hazard is conditioned on at least one success (the block was chosen
    because it holds the next id). The offset logits see the block through a learned block
    embedding added to the hidden state.

    Parameters
    ----------
    n_hidden
        Width of the decoder hidden state.
    n_features
        Number of features ``D``; END is id ``D``.
    block_size
        Ids per block; ``None`` uses ``ceil(sqrt(D))``.
    n_context
        Size of the per-row context (the latent); 0 for none. It adds a term to the block
        logits and a rank-``context_rank`` feature-specific term to the offset logits.
    context_rank
        Rank of the context's offset term (``n_features × context_rank`` parameters) when
        ``context_width`` is 0.
    context_width
        Above 0: the context first goes through a hidden layer of this width (SiLU), like
        scVI's decoder; the block term and the offset term (``n_features × context_width``
        weights, zero at the start) both read that layer instead of a linear rank-
        ``context_rank`` map.
    current_block_hazard
        Give the block of the last emitted id the probability that one of its remaining
        offsets succeeds (computed from the offset hazards) instead of its whole-block
        logit, so that continuing inside a block is one consistent hazard.
    """

    def __init__(
        self,
        n_hidden: int,
        n_features: int,
        block_size: int | None = None,
        n_context: int = 0,
        context_rank: int = 8,
        current_block_hazard: bool = False,
        context_width: int = 0,
    ):
        super().__init__()
        self.n_features = n_features
        self.current_block_hazard = current_block_hazard
        self.context_width = context_width if n_context else 0
        self.block_size = block_size or max(1, math.ceil(math.sqrt(n_features)))
        self.n_blocks = math.ceil(n_features / self.block_size)
        self.block_proj = nn.Linear(n_hidden, self.n_blocks)
        self.block_embedding = nn.Embedding(self.n_blocks, n_hidden)
        self.offset_proj = nn.Sequential(nn.SiLU(), nn.Linear(n_hidden, self.block_size))
        self.context_block = self.context_rank = self.context_offset = None
        if n_context and context_width:
            # `context_rank` holds the context's features (a hidden layer here)
            self.context_rank = _context_layer(n_context, context_width)
            self.context_block = nn.Linear(context_width, self.n_blocks, bias=False)
            context_rank = context_width
        elif n_context:
            check_int(context_rank, "context_rank", 1, "a positive integer")
            self.context_block = nn.Linear(n_context, self.n_blocks, bias=False)
            self.context_rank = nn.Linear(n_context, context_rank, bias=False)
        if n_context:
            self.context_offset = nn.Parameter(
                torch.zeros(self.n_blocks, self.block_size, context_rank)
            )
            self.n_context_features = context_rank
        # per-feature offset bias: each feature's own base hazard (see init_hazards)
        self.offset_bias = nn.Parameter(torch.zeros(self.n_blocks, self.block_size))

    @torch.no_grad()
    def init_hazards(self, rate: torch.Tensor) -> None:
        """Start from independent detections with per-feature rates ``rate`` (``(D,)``).

        The offset bias of feature ``j`` becomes ``logit(rate_j)`` and the bias of block
        ``b`` ``logit(1 - prod_{j in b} (1 - rate_j))``: with zero weights the two-level
        hazard is then exactly the product of independent Bernoulli(``rate_j``) detections.
        """
        r = torch.zeros(self.n_blocks * self.block_size)
        r[: self.n_features] = torch.as_tensor(rate, dtype=torch.float32).clamp(0, 1)
        r = r.view(self.n_blocks, self.block_size)
        self.offset_bias.copy_(_rate_logit(r).to(self.offset_bias.device))
        block = -torch.expm1(torch.log1p(-r.clamp_max(1 - 1e-4)).sum(-1))
        self.block_proj.bias.copy_(_rate_logit(block).to(self.block_proj.bias.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # models saved before the per-feature offset bias existed load with zeros
        state_dict.setdefault(prefix + "offset_bias", torch.zeros_like(self.offset_bias))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def prepare(self, allowed: torch.Tensor | None, device: torch.device) -> _FactorisedTables:
        """Build the allowed ids as a ``(n_blocks, block_size)`` table and each block's last one."""
        table = torch.zeros(self.n_blocks * self.block_size, dtype=torch.bool, device=device)
        table[: self.n_features] = True if allowed is None else allowed.to(device)
        table = table.view(self.n_blocks, self.block_size)
        offsets = torch.arange(self.block_size, device=device)
        last_offset = torch.where(table, offsets, -1).amax(-1)  # -1: nothing allowed
        first_id = torch.arange(self.n_blocks, device=device) * self.block_size
        block_last_id = torch.where(last_offset >= 0, first_id + last_offset, -1)
        return _FactorisedTables(table, block_last_id, offsets)

    def context_features(self, context: torch.Tensor | None) -> torch.Tensor | None:
        """Apply the context's hidden layer (``context_width``) or rank-``context_rank`` map; see :class:`IndexHead`."""
        if self.context_rank is None or context is None:
            return None
        return self.context_rank(context)

    def context_terms(self, context: torch.Tensor | None) -> tuple[torch.Tensor, ...] | None:
        """Block-logit term and per-row offset-bias table of the context (None without one).

        The table ``(..., n_blocks, block_size)`` is each row's per-feature offset bias
        plus its low-rank context term, built once per row (``O(D · rank)``); each token
        then gathers one block of it instead of contracting a ``(block_size, rank)`` slice
        of :attr:`context_offset` per token (``rank`` times the work and memory).
        """
        low_rank = self.context_features(context)  # (..., rank or width)
        if low_rank is None:
            return None
        flat = self.context_offset.view(self.n_blocks * self.block_size, -1)
        table = (low_rank @ flat.T).view(*low_rank.shape[:-1], self.n_blocks, self.block_size)
        block = self.context_block(low_rank if self.context_width else context)
        return block, table + self.offset_bias

    def _block_logits(self, h, last, tables, terms):
        valid = tables.block_last_id > last.unsqueeze(-1)
        logits = self.block_proj(h)
        if terms is not None:
            logits = logits + terms[0]
        if self.current_block_hazard:
            logits = self._with_current_block(logits, h, last, tables, terms)
        return logits, valid

    def _with_current_block(self, logits, h, last, tables, terms):
        """Block ``last // block_size`` gets ``logit P(some remaining offset succeeds)``.

        Its block logit would otherwise stand for the whole block although only the
        offsets after ``last`` remain; from the offset hazards it is exact (with
        :meth:`init_hazards`, the whole head is then independent detections).
        """
        current = torch.where(last >= 0, last // self.block_size, 0)
        raw, valid = self._offset_logits(h, current, last, tables, terms)
        log_none = torch.where(valid, F.logsigmoid(-raw.float()), 0.0).sum(-1)
        log_some = log1mexp(log_none.clamp_max(-1e-6)) - log_none  # logit(1 - exp(log_none))
        block_ids = torch.arange(self.n_blocks, device=h.device)
        here = (block_ids == current.unsqueeze(-1)) & (last >= 0).unsqueeze(-1)
        return torch.where(here, log_some.unsqueeze(-1).to(logits.dtype), logits)

    def _offset_logits(self, h, block, last, tables, terms):
        block = block.clamp_max(self.n_blocks - 1)  # END rows: any block, result unused
        logits = self.offset_proj(h + self.block_embedding(block))
        if terms is None:
            logits = logits + self.offset_bias[block]
        else:
            logits = logits + _gather_blocks(terms[1], block)
        ids = block.unsqueeze(-1) * self.block_size + tables.offsets
        valid = (ids > last.unsqueeze(-1)) & tables.allowed[block]
        return logits, valid

    def _offset_log_probs(self, h, block, last, tables, terms):
        """Within-block log-probabilities, conditioned on some offset being chosen."""
        logits, valid = self._offset_logits(h, block, last, tables, terms)
        return _condition_on_success(hazard_log_probs(logits, valid), valid)

    def log_probs(self, h, last, allowed=None, context=None):
        """``(..., D + 1)`` log-probabilities of every id; see :meth:`IndexHead.log_probs`.

        The block's log-probability plus the offset's within it, for every block: O(D)
        work and memory per state (the training and decoding paths take O(√D)), for
        diagnostics that need the whole next-id distribution.
        """
        tables, terms = self.prepare(allowed, h.device), self.context_terms(context)
        block_logp = hazard_log_probs(*self._block_logits(h, last, tables, terms))
        blocks = torch.arange(self.n_blocks, device=h.device)
        logits = self.offset_proj(h.unsqueeze(-2) + self.block_embedding(blocks))
        if terms is None:
            logits = logits + self.offset_bias
        else:
            logits = logits + terms[1]
        ids = blocks.unsqueeze(-1) * self.block_size + tables.offsets
        valid = (ids > last[..., None, None]) & tables.allowed
        offset_logp = _condition_on_success(hazard_log_probs(logits, valid), valid)
        pairs = (block_logp[..., :-1, None] + offset_logp).flatten(-2)[..., : self.n_features]
        return torch.cat([pairs, block_logp[..., -1:]], dim=-1)

    def log_prob(
        self, h, target, last, allowed=None, context=None, *, return_argmax=False,
        context_terms=None,
    ):  # fmt: skip
        """Log-probability of ``target`` ids; see :meth:`IndexHead.log_prob`."""
        tables = self.prepare(allowed, h.device)
        terms = self.context_terms(context) if context_terms is None else context_terms
        block_logp = hazard_log_probs(*self._block_logits(h, last, tables, terms))
        is_end = target >= self.n_features
        block = torch.where(is_end, self.n_blocks, target // self.block_size)
        offset_logp = self._offset_log_probs(h, block, last, tables, terms)
        target_offset_logp = _gather_last(
            offset_logp, torch.where(is_end, 0, target % self.block_size)
        )
        target_logp = _gather_last(block_logp, block) + torch.where(is_end, 0.0, target_offset_logp)
        if not return_argmax:
            return target_logp
        return target_logp, self._most_likely(h, last, tables, block_logp, terms)

    def feature_terms(self, context_terms, feature):
        """Return the latent's term of each chosen feature; see :meth:`IndexHead.feature_terms`."""
        if context_terms is None:
            return None
        with_bias = _gather_features(context_terms[1], feature)  # the table holds the bias
        return with_bias - self.offset_bias.view(-1)[feature]

    def _most_likely(self, h, last, tables, block_logp, terms):
        block = block_logp.argmax(-1)
        offset = self._offset_log_probs(h, block, last, tables, terms).argmax(-1)
        return self._to_id(block, offset)

    def _to_id(self, block: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return torch.where(
            block == self.n_blocks, self.n_features, block * self.block_size + offset
        )

    def sample(
        self, h, last, allowed=None, context=None, *,
        generator=None, temperature=1.0, greedy=False, tables=None, context_terms=None,
    ):  # fmt: skip
        """Draw the next id (``D`` = END); see :meth:`IndexHead.sample`."""
        tables = self.prepare(allowed, h.device) if tables is None else tables
        terms = self.context_terms(context) if context_terms is None else context_terms
        block_logits, block_valid = self._block_logits(h, last, tables, terms)
        block = _draw(block_logits, block_valid, generator, temperature, greedy)
        offset_logits, offset_valid = self._offset_logits(h, block, last, tables, terms)
        offset = _draw(
            offset_logits, offset_valid, generator, temperature, greedy, at_least_one=True
        )
        return self._to_id(block, offset)


def _gather_blocks(table: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """Each row's own block of a per-row table: ``table[row, block[row, ...]]``.

    ``table`` is ``(batch, [1, ...,] n_blocks, s)`` (one table per row, as
    :meth:`FactorisedIndexHead.context_terms` builds it from a per-row context) and
    ``block`` ``(batch, ...)``; the result is ``(*block.shape, s)``. The backward pass
    accumulates into the ``(batch, n_blocks, s)`` table, never into a broadcast copy.
    """
    table = table.reshape(table.shape[0], *table.shape[-2:])
    rows = torch.arange(block.shape[0], device=block.device)
    return table[rows.view(-1, *([1] * (block.dim() - 1))), block]


def _gather_features(table: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
    """``table[row, feature[row, ...]]`` of a per-row table over (padded) feature ids.

    ``table`` is ``(batch, [1, ...,] n)`` or ``(batch, [1, ...,] n_blocks, block_size)``
    (flattened to ids), ``feature`` ``(batch, ...)``; the result has ``feature``'s shape.
    """
    table = table.reshape(table.shape[0], -1)
    return table.gather(1, feature.reshape(feature.shape[0], -1)).view(feature.shape)


def _context_layer(n_context: int, width: int) -> nn.Module:
    """Build the hidden layer a context goes through before its per-feature weights."""
    check_int(width, "context_width", 0, "a non-negative integer (0: linear context path)")
    return nn.Sequential(nn.Linear(n_context, width), nn.SiLU())


def make_index_head(
    kind: str,
    n_hidden: int,
    n_features: int,
    block_size: int | None = None,
    n_context: int = 0,
    *,
    current_block_hazard: bool = False,
    context_width: int = 0,
    context_rank: int = 8,
) -> IndexHead:
    """Build an index head by name (``"flat"`` or ``"factorised"``).

    ``current_block_hazard`` and ``context_rank`` apply to the factorised head only (the
    flat head has no blocks, and its linear context path has the context's full rank);
    ``context_width`` to both (see the heads).
    """
    if kind == "flat":
        return FlatIndexHead(n_hidden, n_features, n_context, context_width)
    if kind == "factorised":
        return FactorisedIndexHead(
            n_hidden, n_features, block_size, n_context, context_rank=context_rank,
            current_block_hazard=current_block_hazard, context_width=context_width,
        )  # fmt: skip
    msg = f"Unknown index_head={kind!r}; use 'flat' or 'factorised'."
    raise ValueError(msg)
