"""Pre-LayerNorm Transformer blocks with padding masks, causal masking and a KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Preallocated keys/values of one self-attention layer for incremental decoding.

    Parameters
    ----------
    batch_size
        Number of sequences decoded together.
    n_heads
        Attention heads.
    max_length
        Longest sequence the cache holds.
    head_dim
        Size of each head.
    device, dtype
        Where the buffers live.
    """

    def __init__(self, batch_size, n_heads, max_length, head_dim, device, dtype):
        shape = (batch_size, n_heads, max_length, head_dim)
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys/values and return all cached ones so far."""
        n = k.shape[2]
        self.k[:, :, self.length : self.length + n] = k
        self.v[:, :, self.length : self.length + n] = v
        self.length += n
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the sequences ``rows`` (used when finished rows leave the batch)."""
        self.k = self.k.index_select(0, rows)
        self.v = self.v.index_select(0, rows)


class Attention(nn.Module):
    """Multi-head attention using :func:`torch.nn.functional.scaled_dot_product_attention`.

    Parameters
    ----------
    n_hidden
        Model width.
    n_heads
        Number of heads (must divide ``n_hidden``).
    dropout_rate
        Attention dropout during training.
    """

    def __init__(self, n_hidden: int, n_heads: int, dropout_rate: float = 0.0):
        super().__init__()
        if n_hidden % n_heads:
            msg = f"n_hidden={n_hidden} must be divisible by n_heads={n_heads}."
            raise ValueError(msg)
        self.n_heads = n_heads
        self.head_dim = n_hidden // n_heads
        self.q = nn.Linear(n_hidden, n_hidden)
        self.kv = nn.Linear(n_hidden, 2 * n_hidden)
        self.out = nn.Linear(n_hidden, n_hidden)
        self.dropout_rate = dropout_rate

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``context`` in head layout ``(batch, heads, length, head_dim)``."""
        k, v = self.kv(context).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        key_mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` to ``context`` (self-attention when ``context`` is None).

        Parameters
        ----------
        x
            ``(batch, length, n_hidden)`` queries.
        context
            ``(batch, length_kv, n_hidden)`` keys/values source; ``x`` when None.
        key_mask
            ``(batch, length_kv)`` bool, True where a key may be attended.
        causal
            Causal masking (self-attention over a full sequence).
        cache
            KV cache for incremental self-attention: new keys/values are appended and the
            query attends to everything cached (including itself).
        kv
            Precomputed ``(keys, values)`` (cross-attention to a fixed memory).
        """
        q = self._heads(self.q(x))
        if kv is not None:
            k, v = kv
        else:
            k, v = self.project_kv(x if context is None else context)
            if cache is not None:
                k, v = cache.append(k, v)
        attn_mask = None
        if key_mask is not None:
            attn_mask = key_mask[:, None, None, :]
        is_causal = causal and x.shape[1] > 1
        if cache is not None and x.shape[1] > 1:
            msg = "KV-cached attention takes one new token at a time."
            raise ValueError(msg)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout_rate if self.training else 0.0,
            is_causal=is_causal,
        )
        b, _, t, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, t, -1))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm Transformer block: self-attention, optional cross-attention, feed-forward.

    Parameters
    ----------
    n_hidden
        Model width.
    n_heads
        Attention heads.
    n_ff
        Feed-forward width.
    dropout_rate
        Dropout on the residual branches. Attention weights are not dropped: on CPU that
        forces PyTorch's unfused attention path, which is tens of times slower.
    cross_attention
        Whether the block attends to a memory (decoder blocks).
    """

    def __init__(
        self,
        n_hidden: int,
        n_heads: int,
        n_ff: int,
        dropout_rate: float = 0.1,
        cross_attention: bool = False,
    ):
        super().__init__()
        self.norm_self = nn.LayerNorm(n_hidden)
        self.self_attn = Attention(n_hidden, n_heads)
        self.cross_attn = Attention(n_hidden, n_heads) if cross_attention else None
        self.norm_cross = nn.LayerNorm(n_hidden) if cross_attention else None
        self.norm_ff = nn.LayerNorm(n_hidden)
        self.ff = nn.Sequential(nn.Linear(n_hidden, n_ff), nn.GELU(), nn.Linear(n_ff, n_hidden))
        self.dropout = nn.Dropout(dropout_rate)

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_mask: torch.Tensor | None = None,
        causal: bool = False,
        memory: torch.Tensor | None = None,
        memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Apply the block; see :meth:`Attention.forward` for the masking arguments."""
        h = self.self_attn(self.norm_self(x), key_mask=key_mask, causal=causal, cache=cache)
        x = x + self.dropout(h)
        if self.cross_attn is not None:
            h = self.cross_attn(self.norm_cross(x), memory, kv=memory_kv)
            x = x + self.dropout(h)
        return x + self.dropout(self.ff(self.norm_ff(x)))
