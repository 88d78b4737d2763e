"""The sparsity-aware set encoder."""

from __future__ import annotations

import torch
from torch import nn

from sc_sed._defaults import MODULE_DEFAULTS as D

from ._attention import TransformerBlock
from ._embeddings import IndexEmbedding, ValueEmbedding
from ._spectral import SpectralFeatures


class SetEncoder(nn.Module):
    """Encode the set of a row's non-zero (feature, value) pairs into a Gaussian latent.

    Each pair is one token ``IndexEmbedding(index) + ValueEmbedding(value)``; there is no
    sequence-position encoding, so the output does not depend on the order of the pairs.
    A learned summary token joins every set (so a row without non-zeros is still
    encoded), a pre-LayerNorm Transformer encoder mixes the tokens under a padding mask,
    and a **masked** mean over the real tokens gives ``(mu, logvar)``.

    A mean does not see how many tokens it averaged: with ``size_features`` the head also
    reads the row's size, ``log1p`` of its number of non-zeros and of the sum of its
    absolute values, so that the latent can carry cell size (library size, detected
    genes) at thousands of non-zeros per row, where the summary token's share of the
    mean is negligible (``benchmarks/README.md``, "What did not work").

    Parameters
    ----------
    n_latent
        Latent size.
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
    index_base
        Base of the sinusoidal feature-index code.
    n_features
        Number of features, for a learned per-feature embedding added to the sinusoidal
        code (see :class:`IndexEmbedding`); None for the sinusoidal code only.
    size_features
        Give the head the row's size (see above) beside the pooled tokens.
    spectral
        Give the head the row's scores on principal components of the training rows
        (a :class:`SpectralFeatures`, fitted before training) beside the pooled tokens.
    """

    def __init__(
        self,
        n_latent: int,
        n_hidden: int = D.n_hidden,
        n_layers: int = D.n_layers,
        n_heads: int = D.n_heads,
        n_ff: int = D.n_ff,
        dropout_rate: float = D.dropout_rate,
        index_base: float = D.index_base,
        n_features: int | None = None,
        size_features: bool = D.encoder_size_features,
        spectral: SpectralFeatures | None = None,
    ):
        super().__init__()
        self.index_embedding = IndexEmbedding(n_hidden, index_base, n_features)
        self.value_embedding = ValueEmbedding(n_hidden)
        self.summary_token = nn.Parameter(torch.randn(1, 1, n_hidden) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(n_hidden, n_heads, n_ff, dropout_rate) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(n_hidden)
        self.size_features = size_features
        self.spectral = spectral
        n_extra = (2 if size_features else 0) + (spectral.n_components if spectral else 0)
        self.head = nn.Linear(n_hidden + n_extra, 2 * n_latent)

    def forward(
        self, index: torch.Tensor, value: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch of sets.

        Parameters
        ----------
        index
            ``(batch, length)`` feature ids (anything at masked positions).
        value
            ``(batch, length)`` values.
        mask
            ``(batch, length)`` bool, True at real pairs.

        Returns
        -------
        ``mu`` and ``logvar``, each ``(batch, n_latent)``.
        """
        index = torch.where(mask, index, torch.zeros_like(index))
        x = self.index_embedding(index) + self.value_embedding(value * mask)
        x = torch.cat([self.summary_token.expand(x.shape[0], -1, -1), x], dim=1)
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        for block in self.blocks:
            x = block(x, key_mask=mask)
        x = self.norm(x)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = [(x * weights).sum(1) / weights.sum(1)]
        if self.size_features:
            pooled.append(row_size(value, mask[:, 1:]))
        if self.spectral is not None:
            pooled.append(self.spectral(index, value, mask[:, 1:]))
        pooled = torch.cat([p.to(pooled[0].dtype) for p in pooled], dim=-1)
        mu, logvar = self.head(pooled).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)


def row_size(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(batch, 2)``: ``log1p`` of each row's number of real pairs and of their summed ``|value|``.

    Parameters
    ----------
    value
        ``(batch, length)`` values.
    mask
        ``(batch, length)`` bool, True at real pairs.
    """
    real = mask.to(torch.float32)
    n = real.sum(1)
    total = (value.to(torch.float32).abs() * real).sum(1)
    return torch.stack([torch.log1p(n), torch.log1p(total)], dim=-1)
