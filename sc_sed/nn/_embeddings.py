"""Token and noise-level embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal(x: torch.Tensor, dim: int, base: float = 10_000.0) -> torch.Tensor:
    """Compute fixed sinusoidal features of a (float or integer) tensor.

    Parameters
    ----------
    x
        Tensor of any shape.
    dim
        Output size (even).
    base
        Longest wavelength, in units of ``x``.

    Returns
    -------
    Tensor of shape ``(*x.shape, dim)``: ``[sin(x w_k), cos(x w_k)]`` with
    ``w_k = base^(-2k/dim)``. Computed on the fly, so no table of size ``n_features`` exists.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(base) * torch.arange(half, device=x.device, dtype=torch.float32) / half
    )
    angles = x.float().unsqueeze(-1) * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class IndexEmbedding(nn.Module):
    """Feature-index embedding: sinusoidal code, linear map, optional learned vector.

    The fixed sinusoidal code of the feature id goes through a linear map; optionally a
    learned per-feature vector is added.

    The sinusoidal code alone is smooth in the feature id, so after mean-pooling a set of
    them a small network can hardly tell which *specific* features (marker genes) were
    present; the learned table (initialised at zero, so training starts from the pure
    sinusoidal code) gives every feature its own direction. It holds ``n_features ×
    n_hidden`` parameters, independent of the batch.

    Parameters
    ----------
    n_hidden
        Embedding size.
    base
        Sinusoid base (10,000–20,000 covers tens of thousands of features).
    n_features
        Size of the learned table; None for the sinusoidal code only.
    """

    def __init__(self, n_hidden: int, base: float = 10_000.0, n_features: int | None = None):
        super().__init__()
        self.n_hidden = n_hidden
        self.base = base
        self.proj = nn.Linear(n_hidden, n_hidden)
        self.table = None
        if n_features:
            self.table = nn.Embedding(n_features, n_hidden)
            nn.init.zeros_(self.table.weight)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """Embed integer feature ids (``0 <= id < n_features``) of any shape."""
        out = self.proj(sinusoidal(index, self.n_hidden, self.base))
        return out if self.table is None else out + self.table(index)


class ValueEmbedding(nn.Module):
    """Small MLP embedding of a scalar value, applied to ``asinh(value)``.

    Parameters
    ----------
    n_hidden
        Embedding size.
    """

    def __init__(self, n_hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_hidden))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """Embed values of any shape."""
        return self.mlp(torch.asinh(value).unsqueeze(-1))


class NoiseLevelEmbedding(nn.Module):
    """Embedding of the diffusion log-SNR: sinusoidal features followed by an MLP.

    Parameters
    ----------
    n_embed
        Output size.
    """

    def __init__(self, n_embed: int):
        super().__init__()
        self.n_embed = n_embed
        self.mlp = nn.Sequential(
            nn.Linear(n_embed, n_embed), nn.SiLU(), nn.Linear(n_embed, n_embed)
        )

    def forward(self, logsnr: torch.Tensor) -> torch.Tensor:
        """Embed a ``(batch,)`` log-SNR tensor."""
        # log-SNR spans about [-20, 20]; scale so the sinusoid sees a useful range.
        return self.mlp(sinusoidal(logsnr * 25.0, self.n_embed, base=10_000.0))
