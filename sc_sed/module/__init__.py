"""Tensor-level modules of SED."""

from ._diffusion import LatentDiffusion
from ._sed import CONDITION_KEY, TOKENS_INDEX_KEY, TOKENS_VALUE_KEY, SEDModule

__all__ = ["CONDITION_KEY", "LatentDiffusion", "SEDModule", "TOKENS_INDEX_KEY", "TOKENS_VALUE_KEY"]
