"""Pre-LayerNorm Transformer blocks with padding masks, causal masking and a KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Keys/values of one self-attention layer for incremental decoding.

    The buffers hold ``capacity`` positions and grow by doubling (up to ``max_length``)
    as tokens arrive, so memory tracks the rows actually generated rather than the
    longest row the model may emit. With ``static=True`` they are allocated at
    ``max_length`` at once and never move (fixed shapes and addresses, as CUDA graphs
    need); the caller then writes at a position tensor (:meth:`write`) and masks the
    keys past it.

    Parameters
    ----------
    batch_size
        Number of sequences decoded together.
    n_heads
        Attention heads.
    head_dim
        Size of each head.
    max_length
        Most positions the cache may hold.
    initial_length
        Positions allocated before the first growth (dynamic caches).
    static
        Allocate ``max_length`` positions up front and never reallocate.
    device, dtype
        Where the buffers live; None takes them from the first keys written.
    """

    def __init__(
        self,
        batch_size: int,
        n_heads: int,
        head_dim: int,
        max_length: int,
        *,
        initial_length: int = 64,
        static: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        self.batch_size, self.n_heads, self.head_dim = batch_size, n_heads, head_dim
        self.max_length = max_length
        self.static = static
        self.capacity = max_length if static else min(initial_length, max_length)
        self.k = self.v = None
        if device is not None and dtype is not None:
            self._allocate(torch.device(device), dtype)
        self.length = 0

    def _allocate(self, device: torch.device, dtype: torch.dtype) -> None:
        shape = (self.batch_size, self.n_heads, self.capacity, self.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)

    def _check(self, k: torch.Tensor, v: torch.Tensor, n_new: int) -> None:
        ok = k.dim() == 4 and k.shape == v.shape
        if not ok or (k.shape[0], k.shape[1], k.shape[3]) != (
            self.batch_size,
            self.n_heads,
            self.head_dim,
        ):
            msg = (
                f"KVCache.append expects keys and values of shape (batch={self.batch_size}, "
                f"heads={self.n_heads}, new, head_dim={self.head_dim}); got "
                f"{tuple(k.shape)} and {tuple(v.shape)}."
            )
            raise ValueError(msg)
        if self.length + n_new > self.max_length:
            msg = (
                f"KVCache holds at most max_length={self.max_length} positions; "
                f"{self.length} are cached and {n_new} more were given."
            )
            raise ValueError(msg)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys/values and return all cached ones so far.

        The input is checked before anything is written, so a rejected call leaves the
        cache as it was.
        """
        n_new = k.shape[2] if k.dim() == 4 else 0
        self._check(k, v, n_new)
        if self.k is None:
            self._allocate(k.device, k.dtype)
        if self.length + n_new > self.capacity:
            self._grow(self.length + n_new)
        self.k[:, :, self.length : self.length + n_new] = k
        self.v[:, :, self.length : self.length + n_new] = v
        self.length += n_new
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def write(
        self, k: torch.Tensor, v: torch.Tensor, position: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one new token at ``position`` (a 1-element long tensor) of a static cache.

        Returns the whole buffers; keys past ``position`` must be masked by the caller.
        Nothing here reads ``position`` on the host, so the call can be graph-captured.
        """
        if not self.static or self.k is None:
            msg = "KVCache.write needs a static cache with device and dtype given."
            raise RuntimeError(msg)
        self.k.index_copy_(2, position, k.to(self.k.dtype))
        self.v.index_copy_(2, position, v.to(self.v.dtype))
        return self.k, self.v

    def _grow(self, needed: int) -> None:
        capacity = self.capacity
        while capacity < needed:
            capacity *= 2
        self.capacity = min(capacity, self.max_length)
        old_k, old_v = self.k, self.v
        self._allocate(old_k.device, old_k.dtype)
        self.k[:, :, : self.length] = old_k[:, :, : self.length]
        self.v[:, :, : self.length] = old_v[:, :, : self.length]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the sequences ``rows`` (used when finished rows leave the batch)."""
        if self.static:
            msg = "A static KVCache keeps its batch slots; mask finished rows instead."
            raise RuntimeError(msg)
        self.batch_size = rows.numel()
        if self.k is not None:
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
        cache_position: torch.Tensor | None = None,
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
        cache_position
            With a static ``cache``: the position (1-element long tensor) the new token is
            written at; pass ``key_mask`` hiding the positions after it.
        """
        if cache is not None and x.shape[1] > 1:
            msg = "KV-cached attention takes one new token at a time."
            raise ValueError(msg)
        q = self._heads(self.q(x))
        if kv is not None:
            k, v = kv
        else:
            k, v = self.project_kv(x if context is None else context)
            if cache is not None and cache_position is not None:
                k, v = cache.write(k, v, cache_position)
            elif cache is not None:
                k, v = cache.append(k, v)
        attn_mask = None
        if key_mask is not None:
            attn_mask = key_mask[:, None, None, :]
        is_causal = causal and x.shape[1] > 1
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
        cache_position: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply the block; see :meth:`Attention.forward` for the masking arguments."""
        h = self.self_attn(
            self.norm_self(x),
            key_mask=key_mask,
            causal=causal,
            cache=cache,
            cache_position=cache_position,
        )
        x = x + self.dropout(h)
        if self.cross_attn is not None:
            h = self.cross_attn(self.norm_cross(x), memory, kv=memory_kv)
            x = x + self.dropout(h)
        return x + self.dropout(self.ff(self.norm_ff(x)))
