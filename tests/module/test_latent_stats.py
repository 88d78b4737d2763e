import pytest
import torch

from sc_sed.module import LatentDiffusion


def test_latent_stats_refuse_a_single_row():
    diffusion = LatentDiffusion(4, [], (16, 8))
    with pytest.raises(ValueError, match="at least 2"):
        diffusion.fit_stats(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="non-finite"):
        diffusion.fit_stats(torch.full((3, 4), float("nan")))
    diffusion.fit_stats(torch.randn(3, 4))
    assert torch.isfinite(diffusion.latent_std).all()
