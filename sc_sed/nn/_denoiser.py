"""The latent denoiser: an MLP "U-Net" predicting the clean latent from a noisy one."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._embeddings import NoiseLevelEmbedding


class ResidualBlock(nn.Module):
    """LayerNorm–SiLU–Linear block with an additive embedding and a residual path.

    Parameters
    ----------
    n_in, n_out
        Input and output widths.
    n_embed
        Width of the noise-level/condition embedding.
    dropout_rate
        Dropout before the second linear layer.
    """

    def __init__(self, n_in: int, n_out: int, n_embed: int, dropout_rate: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(n_in)
        self.lin1 = nn.Linear(n_in, n_out)
        self.embed = nn.Linear(n_embed, n_out)
        self.norm2 = nn.LayerNorm(n_out)
        self.dropout = nn.Dropout(dropout_rate)
        self.lin2 = nn.Linear(n_out, n_out)
        self.skip = nn.Identity() if n_in == n_out else nn.Linear(n_in, n_out)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` given the embedding ``emb``."""
        h = self.lin1(self.act(self.norm1(x))) + self.embed(emb)
        h = self.lin2(self.dropout(self.act(self.norm2(h))))
        return h + self.skip(x)


class LatentDenoiser(nn.Module):
    """MLP U-Net for x₀-prediction in latent diffusion.

    Input: the noisy latent and the self-conditioning estimate of the clean latent
    (zeros when unused), concatenated. A down path of residual blocks over ``widths``
    (e.g. 512-512-256-128), a middle block, and a mirrored up path with additive skip
    connections. The log-SNR embedding plus one learned embedding per categorical
    condition (each with an extra "null" category for classifier-free guidance) is added
    inside every block.

    Parameters
    ----------
    n_latent
        Latent size.
    widths
        Widths of the down path.
    n_cats_per_cond
        Number of categories of each conditioning covariate (empty: unconditional).
    n_embed
        Width of the noise-level/condition embedding.
    dropout_rate
        Dropout inside the blocks.
    """

    def __init__(
        self,
        n_latent: int,
        widths: Sequence[int] = (512, 512, 256, 128),
        n_cats_per_cond: Sequence[int] = (),
        n_embed: int = 128,
        dropout_rate: float = 0.0,
    ):
        super().__init__()
        widths = list(widths)
        self.n_cats_per_cond = list(n_cats_per_cond)
        self.noise_embedding = NoiseLevelEmbedding(n_embed)
        self.cond_embeddings = nn.ModuleList(nn.Embedding(n + 1, n_embed) for n in n_cats_per_cond)
        self.inp = nn.Linear(2 * n_latent, widths[0])
        self.down = nn.ModuleList(
            ResidualBlock(a, b, n_embed, dropout_rate)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.mid = ResidualBlock(widths[-1], widths[-1], n_embed, dropout_rate)
        self.up = nn.ModuleList(
            ResidualBlock(b, a, n_embed, dropout_rate)
            for a, b in reversed(list(zip(widths[:-1], widths[1:], strict=True)))
        )
        self.out_norm = nn.LayerNorm(widths[0])
        self.out = nn.Linear(widths[0], n_latent)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def null_condition(self, n: int, device: torch.device | str) -> torch.Tensor:
        """``(n, n_conds)`` condition codes meaning "unconditional" for every covariate."""
        null = torch.tensor(self.n_cats_per_cond, dtype=torch.long, device=device)
        return null.expand(n, -1)

    def forward(
        self,
        z_t: torch.Tensor,
        logsnr: torch.Tensor,
        z0_self_cond: torch.Tensor,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the clean latent.

        Parameters
        ----------
        z_t
            ``(batch, n_latent)`` noisy latents.
        logsnr
            ``(batch,)`` log signal-to-noise ratio of ``z_t``.
        z0_self_cond
            ``(batch, n_latent)`` previous estimate of the clean latent (zeros if none).
        cond
            ``(batch, n_conds)`` category codes; code ``n_cats`` of a covariate is its
            "null" (dropped) value. Ignored for an unconditional denoiser.

        Returns
        -------
        ``(batch, n_latent)`` estimate of the clean latent.
        """
        emb = self.noise_embedding(logsnr)
        for k, table in enumerate(self.cond_embeddings):
            emb = emb + table(cond[:, k])
        h = self.inp(torch.cat([z_t, z0_self_cond], dim=-1))
        skips = []
        for block in self.down:
            skips.append(h)
            h = block(h, emb)
        h = self.mid(h, emb)
        for block in self.up:
            h = block(h, emb) + skips.pop()
        return self.out(self.out_norm(h))
