"""Index heads: the distribution of the next feature id (or END) under a monotone mask.

A decoded row lists its non-zero features in strictly increasing order, so after emitting
feature ``last`` the only valid continuations are features ``j > last`` that are allowed
(seen in training, by default) and END (id ``n_features``). Invalid ids get probability
zero, so every sampled row has strictly increasing, unique indices by construction.
"""

from __future__ import annotations

import math

import torch
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


class FlatIndexHead(nn.Module):
    """One softmax over all ``n_features + 1`` ids: O(D) work per token.

    Parameters
    ----------
    n_hidden
        Width of the decoder hidden state.
    n_features
        Number of features ``D``; END is id ``D``.
    """

    def __init__(self, n_hidden: int, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.proj = nn.Linear(n_hidden, n_features + 1)

    def _masked_logits(self, h, last, allowed):
        logits = self.proj(h)
        ids = torch.arange(self.n_features + 1, device=h.device)
        valid = ids > last.unsqueeze(-1)
        if allowed is not None:
            valid = valid & torch.cat([allowed, allowed.new_ones(1)])
        valid[..., self.n_features] = True
        return logits.masked_fill(~valid, NEG_INF)

    def log_prob(
        self,
        h: torch.Tensor,
        target: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
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

        Returns
        -------
        ``(...)`` log-probabilities.
        """
        logp = torch.log_softmax(self._masked_logits(h, last, allowed), dim=-1)
        return logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)

    def sample(
        self,
        h: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> torch.Tensor:
        """Draw the next id for each row (``D`` = END); see :meth:`log_prob` for arguments."""
        logits = self._masked_logits(h, last, allowed)
        return gumbel_argmax(logits, generator, temperature, greedy)


class FactorisedIndexHead(nn.Module):
    """Two-level softmax: a block of ``block_size`` ids (or END), then the offset in it.

    With ``block_size ≈ sqrt(D)`` each token costs O(√D) instead of O(D). The monotone
    mask is kept at both levels: a block is valid if it holds at least one allowed id
    greater than ``last``; inside the chosen block only allowed offsets past ``last`` are
    valid. The offset distribution is conditioned on the block through a learned block
    embedding added to the hidden state.

    Parameters
    ----------
    n_hidden
        Width of the decoder hidden state.
    n_features
        Number of features ``D``; END is id ``D``.
    block_size
        Ids per block; ``None`` uses ``ceil(sqrt(D))``.
    """

    def __init__(self, n_hidden: int, n_features: int, block_size: int | None = None):
        super().__init__()
        self.n_features = n_features
        self.block_size = block_size or max(1, math.ceil(math.sqrt(n_features)))
        self.n_blocks = math.ceil(n_features / self.block_size)
        self.block_proj = nn.Linear(n_hidden, self.n_blocks + 1)  # last = END
        self.block_embedding = nn.Embedding(self.n_blocks, n_hidden)
        self.offset_proj = nn.Sequential(
            nn.SiLU(), nn.Linear(n_hidden, self.block_size)
        )

    def _block_tables(self, allowed: torch.Tensor | None, device) -> torch.Tensor:
        """``(n_blocks, block_size)`` bool table of allowed ids (padding ids are False)."""
        n_pad = self.n_blocks * self.block_size
        table = torch.zeros(n_pad, dtype=torch.bool, device=device)
        table[: self.n_features] = True if allowed is None else allowed
        return table.view(self.n_blocks, self.block_size)

    def _masks(self, last, allowed, device):
        """Block-level and within-block masks for a given ``last`` id."""
        table = self._block_tables(allowed, device)
        # highest allowed offset in each block (-1 if none)
        offsets = torch.arange(self.block_size, device=device)
        top = torch.where(table, offsets, torch.full_like(offsets, -1)).amax(-1)
        block_ids = torch.arange(self.n_blocks, device=device)
        first_id = block_ids * self.block_size
        # block b is valid iff it contains an allowed id > last
        valid_block = (first_id + top > last.unsqueeze(-1)) & (top >= 0)
        end = torch.ones_like(valid_block[..., :1])
        return torch.cat([valid_block, end], dim=-1), table

    def _offset_logits(self, h, block, last, table):
        logits = self.offset_proj(h + self.block_embedding(block.clamp_max(self.n_blocks - 1)))
        ids = block.unsqueeze(-1) * self.block_size + torch.arange(
            self.block_size, device=h.device
        )
        valid = (ids > last.unsqueeze(-1)) & table[block.clamp_max(self.n_blocks - 1)]
        return logits.masked_fill(~valid, NEG_INF)

    def log_prob(
        self,
        h: torch.Tensor,
        target: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-probability of ``target`` ids; same contract as :meth:`FlatIndexHead.log_prob`."""
        valid_block, table = self._masks(last, allowed, h.device)
        block_logp = torch.log_softmax(
            self.block_proj(h).masked_fill(~valid_block, NEG_INF), dim=-1
        )
        is_end = target >= self.n_features
        block = torch.where(is_end, self.n_blocks, target // self.block_size)
        logp = block_logp.gather(-1, block.unsqueeze(-1)).squeeze(-1)
        offset_logits = self._offset_logits(h, block, last, table)
        # END rows (and invalid targets, whose block has probability 0) have no valid
        # offset; keep their logits finite so log-probabilities and gradients stay finite.
        no_offset = is_end.unsqueeze(-1) | torch.isinf(offset_logits).all(-1, keepdim=True)
        offset_logits = offset_logits.masked_fill(no_offset, 0.0)
        offset_logp = torch.log_softmax(offset_logits, dim=-1)
        offset = torch.where(is_end, 0, target % self.block_size)
        off = offset_logp.gather(-1, offset.unsqueeze(-1)).squeeze(-1)
        return logp + torch.where(is_end, torch.zeros_like(off), off)

    def sample(
        self,
        h: torch.Tensor,
        last: torch.Tensor,
        allowed: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> torch.Tensor:
        """Draw the next id (``D`` = END); same contract as :meth:`FlatIndexHead.sample`."""
        valid_block, table = self._masks(last, allowed, h.device)
        block_logits = self.block_proj(h).masked_fill(~valid_block, NEG_INF)
        block = gumbel_argmax(block_logits, generator, temperature, greedy)
        is_end = block == self.n_blocks
        offset_logits = self._offset_logits(h, block, last, table)
        offset_logits = offset_logits.masked_fill(is_end.unsqueeze(-1), 0.0)
        offset = gumbel_argmax(offset_logits, generator, temperature, greedy)
        return torch.where(is_end, self.n_features, block * self.block_size + offset)


def make_index_head(
    kind: str, n_hidden: int, n_features: int, block_size: int | None = None
) -> FlatIndexHead | FactorisedIndexHead:
    """Build an index head by name (``"flat"`` or ``"factorised"``)."""
    if kind == "flat":
        return FlatIndexHead(n_hidden, n_features)
    if kind == "factorised":
        return FactorisedIndexHead(n_hidden, n_features, block_size)
    msg = f"Unknown index_head={kind!r}; use 'flat', 'factorised' or 'auto'."
    raise ValueError(msg)
