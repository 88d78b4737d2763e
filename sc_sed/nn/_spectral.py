"""A row's scores on the training data's principal components, read from its non-zeros."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

SpectralTransform = Literal["lognorm", "log1p", "identity"]
#: Row total that ``"lognorm"`` scales every row to before ``log1p`` (scanpy's usual 1e4).
TARGET_SUM = 1e4


def transform_values(
    value: torch.Tensor, mask: torch.Tensor, transform: SpectralTransform
) -> torch.Tensor:
    """Values of the pairs in the space the components live in (0 where ``mask`` is False).

    Parameters
    ----------
    value
        ``(batch, length)`` values of a row's pairs.
    mask
        ``(batch, length)`` bool, True at real pairs.
    transform
        ``"lognorm"``: ``log1p(1e4 · value / row total)`` (counts; scanpy's
        ``normalize_total`` + ``log1p``); ``"log1p"``: ``log1p(value)`` (other
        non-negative data); ``"identity"``: the values themselves (signed data).

    Returns
    -------
    ``(batch, length)`` float32.
    """
    value = torch.where(mask, value.float(), 0.0)
    if transform == "identity":
        return value
    if transform == "log1p":
        return torch.log1p(value.clamp_min(0.0))
    total = value.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.log1p(TARGET_SUM * value.clamp_min(0.0) / total)


class SpectralFeatures(nn.Module):
    """Scores of a row on ``n_components`` principal components of the training rows.

    A mean-pooled set encoder sees *which* features a row holds only through per-feature
    embeddings it has to learn; at 20k features they learn slowly, and the latent then
    separates cell types poorly early in training (``benchmarks/README.md``, "Fidelity").
    The principal components of the training rows
    (:func:`~sc_sed.data.sparse_pca` of :func:`transform_values`), fitted once before
    training and kept as buffers, give the encoder that information from the first step.
    A score is a sum over the row's non-zeros only (features a row lacks contribute the
    centring term, a constant): ``O(nnz · n_components)`` per row, no ``(batch, D)``
    tensor, and independent of the order of the pairs. Scores are standardised with their
    training standard deviation.

    Parameters
    ----------
    n_features
        Number of features ``D``.
    n_components
        Number of components.
    transform
        Value transform before projecting (see :func:`transform_values`).
    """

    def __init__(self, n_features: int, n_components: int, transform: SpectralTransform):
        super().__init__()
        if transform not in ("lognorm", "log1p", "identity"):
            msg = f"Unknown spectral transform {transform!r}; use 'lognorm', 'log1p' or 'identity'."
            raise ValueError(msg)
        self.n_components = n_components
        self.transform = transform
        self.register_buffer("loadings", torch.zeros(n_features, n_components))
        self.register_buffer("center", torch.zeros(n_components))
        self.register_buffer("scale", torch.ones(n_components))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def transform_values(self, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:func:`transform_values` with this module's transform."""
        return transform_values(value, mask, self.transform)

    @torch.no_grad()
    def set_components(self, loadings, mean, sd) -> None:
        """Store components fitted on transformed training rows (see :func:`~sc_sed.data.sparse_pca`).

        Parameters
        ----------
        loadings
            ``(D, n_components)`` component loadings.
        mean
            ``(D,)`` mean of the transformed training rows.
        sd
            ``(n_components,)`` standard deviation of the training scores.
        """
        loadings = torch.as_tensor(loadings, dtype=torch.float32)
        if loadings.shape != self.loadings.shape:
            msg = f"loadings must have shape {tuple(self.loadings.shape)}, got {tuple(loadings.shape)}."
            raise ValueError(msg)
        mean = torch.as_tensor(mean, dtype=torch.float32)
        sd = torch.as_tensor(sd, dtype=torch.float32)
        device = self.loadings.device
        self.loadings.copy_(loadings.to(device))
        self.center.copy_((mean @ loadings).to(device))
        self.scale.copy_(sd.clamp_min(1e-6).to(device))
        self.fitted.fill_(True)

    def forward(self, index: torch.Tensor, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(batch, n_components)`` standardised scores of padded rows.

        Parameters
        ----------
        index
            ``(batch, length)`` feature ids (anything at masked positions).
        value
            ``(batch, length)`` values.
        mask
            ``(batch, length)`` bool, True at real pairs.
        """
        t = self.transform_values(value, mask)
        safe = torch.where(mask, index, torch.zeros_like(index))
        scores = torch.einsum("bl,blk->bk", t, self.loadings[safe])
        return (scores - self.center) / self.scale
