"""Tensor-level modules of SED."""

from ._diffusion import LatentDiffusion
from ._sed import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY, SEDModule

__all__ = ["LatentDiffusion", "SEDModule", "TOKENS_INDEX_KEY", "TOKENS_VALUE_KEY"]
