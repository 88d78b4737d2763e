"""Training: Lightning plans for both stages and sparse batch handling."""

from ._latent_data import LatentDataModule
from ._plans import AutoencoderTrainingPlan, DiffusionTrainingPlan, lr_factor
from ._sparse_batch import SparseDataSplitter, tokenize_batch

__all__ = [
    "AutoencoderTrainingPlan",
    "DiffusionTrainingPlan",
    "LatentDataModule",
    "SparseDataSplitter",
    "lr_factor",
    "tokenize_batch",
]
