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

import torch
import torch.nn.functional as F
from torch import nn

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


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x <= 0`` (clamped just below 0)."""
    x = x.clamp_max(-1e-7)
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


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
    logits = logits.float()  # cumulative sums of log-probabilities need float32 (mixed precision)
    log_fail = torch.where(valid, F.logsigmoid(-logits), 0.0)
    log_succ = torch.where(valid, F.logsigmoid(logits), NEG_INF)
    cum = torch.cumsum(log_fail, dim=-1)
    return torch.cat([log_succ + cum - log_fail, cum[..., -1:]], dim=-1)


def _rate_logit(rate: torch.Tensor) -> torch.Tensor:
    """``logit`` of rates clamped to ``[1e-4, 1 - 1e-4]`` (hazard-bias initialisation)."""
    return torch.logit(torch.as_tensor(rate, dtype=torch.float32).clamp(1e-4, 1 - 1e-4))


def _pick(logp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)


class FlatIndexHead(nn.Module):
    """Hazard over all ``n_features`` ids (END = none chosen): O(D) work per token.

    Parameters
    ----------
    n_hidden
        Width of the decoder hidden state.
    n_features
        Number of features ``D``; END is id ``D``.
    n_context
        Size of the per-row context (the latent); 0 for none.
    """

    def __init__(self, n_hidden: int, n_features: int, n_context: int = 0):
        super().__init__()
        self.n_features = n_features
        self.proj = nn.Linear(n_hidden, n_features)
        self.context_proj = nn.Linear(n_context, n_features, bias=False) if n_context else None

    @torch.no_grad()
    def init_hazards(self, rate: torch.Tensor) -> None:
        """Start from independent detections: bias of feature ``j`` = ``logit(rate_j)``.

        With these biases and zero weights the head is the product of independent
        Bernoulli(``rate_j``) detections, the usual single-cell dropout picture.
        """
        self.proj.bias.copy_(_rate_logit(rate).to(self.proj.bias.device))

    def log_probs(
        self,
        h: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(..., D + 1)`` log-probabilities of every id (``-inf`` where invalid)."""
        ids = torch.arange(self.n_features, device=h.device)
        valid = ids > last.unsqueeze(-1)
        if allowed is not None:
            valid = valid & allowed
        logits = self.proj(h)
        if self.context_proj is not None and context is not None:
            logits = logits + self.context_proj(context)
        return hazard_log_probs(logits, valid)

    def log_prob(
        self,
        h: torch.Tensor,
        target: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        *,
        return_argmax: bool = False,
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

        Returns
        -------
        ``(...)`` log-probabilities (and the argmax ids).
        """
        logp = self.log_probs(h, last, allowed, context)
        out = _pick(logp, target)
        return (out, logp.argmax(-1)) if return_argmax else out

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
    ) -> torch.Tensor:
        """Draw the next id for each row (``D`` = END); see :meth:`log_prob` for arguments."""
        logp = self.log_probs(h, last, allowed, context)
        return gumbel_argmax(logp, generator, temperature, greedy)


class FactorisedIndexHead(nn.Module):
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
        Rank of the context's offset term (``n_features × context_rank`` parameters).
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
        current_block_hazard: bool = True,
    ):
        super().__init__()
        self.n_features = n_features
        self.current_block_hazard = current_block_hazard
        self.block_size = block_size or max(1, math.ceil(math.sqrt(n_features)))
        self.n_blocks = math.ceil(n_features / self.block_size)
        self.block_proj = nn.Linear(n_hidden, self.n_blocks)
        self.block_embedding = nn.Embedding(self.n_blocks, n_hidden)
        self.offset_proj = nn.Sequential(nn.SiLU(), nn.Linear(n_hidden, self.block_size))
        self.context_block = self.context_rank = self.context_offset = None
        if n_context:
            self.context_block = nn.Linear(n_context, self.n_blocks, bias=False)
            self.context_rank = nn.Linear(n_context, context_rank, bias=False)
            self.context_offset = nn.Parameter(
                torch.zeros(self.n_blocks, self.block_size, context_rank)
            )
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

    def _table(self, allowed: torch.Tensor | None, device) -> torch.Tensor:
        """``(n_blocks, block_size)`` bool table of allowed ids (padding ids are False)."""
        table = torch.zeros(self.n_blocks * self.block_size, dtype=torch.bool, device=device)
        table[: self.n_features] = True if allowed is None else allowed
        return table.view(self.n_blocks, self.block_size)

    def _block_log_probs(self, h, last, table, context):
        offsets = torch.arange(self.block_size, device=h.device)
        top = torch.where(table, offsets, -1).amax(-1)  # highest allowed offset per block
        first = torch.arange(self.n_blocks, device=h.device) * self.block_size
        valid = (first + top > last.unsqueeze(-1)) & (top >= 0)
        logits = self.block_proj(h)
        if self.context_block is not None and context is not None:
            logits = logits + self.context_block(context)
        if self.current_block_hazard:
            logits = self._with_current_block(logits, h, last, table, context)
        return hazard_log_probs(logits, valid)

    def _with_current_block(self, logits, h, last, table, context):
        """Block ``last // block_size`` gets ``logit P(some remaining offset succeeds)``.

        Its block logit would otherwise stand for the whole block although only the
        offsets after ``last`` remain; from the offset hazards it is exact (with
        :meth:`init_hazards`, the whole head is then independent detections).
        """
        current = torch.where(last >= 0, last // self.block_size, 0)
        raw, valid = self._offset_logits(h, current, last, table, context)
        log_none = torch.where(valid, F.logsigmoid(-raw.float()), 0.0).sum(-1)
        some = _log1mexp(log_none.clamp_max(-1e-6)) - log_none  # logit(1 - exp(log_none))
        ids = torch.arange(self.n_blocks, device=h.device)
        here = (ids == current.unsqueeze(-1)) & (last >= 0).unsqueeze(-1)
        return torch.where(here, some.unsqueeze(-1).to(logits.dtype), logits)

    def _offset_logits(self, h, block, last, table, context):
        """Raw offset logits of ``block`` and the valid offsets (allowed, past ``last``)."""
        safe = block.clamp_max(self.n_blocks - 1)
        logits = self.offset_proj(h + self.block_embedding(safe)) + self.offset_bias[safe]
        if self.context_offset is not None and context is not None:
            low_rank = self.context_rank(context).unsqueeze(-2)  # (..., 1, rank)
            logits = logits + (self.context_offset[safe] * low_rank).sum(-1)
        ids = safe.unsqueeze(-1) * self.block_size + torch.arange(self.block_size, device=h.device)
        return logits, (ids > last.unsqueeze(-1)) & table[safe]

    def _offset_log_probs(self, h, block, last, table, context):
        logits, valid = self._offset_logits(h, block, last, table, context)
        logp = hazard_log_probs(logits, valid)
        # condition on "some offset is chosen"; rows without a valid offset (END, or an
        # invalid target whose block has probability 0) get finite dummy values
        usable = valid.any(-1, keepdim=True)
        norm = _log1mexp(torch.where(usable, logp[..., -1:], -1.0))
        return torch.where(usable, logp[..., :-1] - norm, 0.0)

    def log_prob(
        self,
        h: torch.Tensor,
        target: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        *,
        return_argmax: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``target`` ids; same contract as :meth:`FlatIndexHead.log_prob`."""
        table = self._table(allowed, h.device)
        block_logp = self._block_log_probs(h, last, table, context)
        is_end = target >= self.n_features
        block = torch.where(is_end, self.n_blocks, target // self.block_size)
        offset_logp = self._offset_log_probs(h, block, last, table, context)
        off = _pick(offset_logp, torch.where(is_end, 0, target % self.block_size))
        out = _pick(block_logp, block) + torch.where(is_end, 0.0, off)
        if not return_argmax:
            return out
        return out, self._greedy(h, last, table, block_logp, context)

    def _greedy(self, h, last, table, block_logp, context):
        block = block_logp.argmax(-1)
        offset = self._offset_log_probs(h, block, last, table, context).argmax(-1)
        return torch.where(
            block == self.n_blocks, self.n_features, block * self.block_size + offset
        )

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
    ) -> torch.Tensor:
        """Draw the next id (``D`` = END); same contract as :meth:`FlatIndexHead.sample`."""
        table = self._table(allowed, h.device)
        block_logp = self._block_log_probs(h, last, table, context)
        block = gumbel_argmax(block_logp, generator, temperature, greedy)
        is_end = block == self.n_blocks
        offset_logp = self._offset_log_probs(h, block, last, table, context)
        offset = gumbel_argmax(offset_logp, generator, temperature, greedy)
        return torch.where(is_end, self.n_features, block * self.block_size + offset)


def make_index_head(
    kind: str, n_hidden: int, n_features: int, block_size: int | None = None, n_context: int = 0
) -> FlatIndexHead | FactorisedIndexHead:
    """Build an index head by name (``"flat"`` or ``"factorised"``)."""
    if kind == "flat":
        return FlatIndexHead(n_hidden, n_features, n_context)
    if kind == "factorised":
        return FactorisedIndexHead(n_hidden, n_features, block_size, n_context)
    msg = f"Unknown index_head={kind!r}; use 'flat' or 'factorised'."
    raise ValueError(msg)
