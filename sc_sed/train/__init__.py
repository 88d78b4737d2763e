"""Training: Lightning plans for both stages and sparse batch handling."""

from ._bucketing import AUTO_BUCKET_PADDING, LengthBucketBatchSampler, padding_factor, row_lengths
from ._datamodule import (
    TokenizingDataModule,
    ValueRules,
    check_values,
    condition_block,
    data_block,
    stream_batches,
    to_scipy,
)
from ._distributed import global_rank, replicas_and_rank
from ._latent_data import LatentDataModule
from ._plans import AutoencoderTrainingPlan, DiffusionTrainingPlan, adam_optimizer, lr_factor
from ._runner import (
    LatentStageTrainRunner,
    StageTrainRunner,
    quiet_sparse_loading,
    uses_distributed_sampler,
)
from ._sparse_batch import SparseDataSplitter, tokenize_batch

__all__ = [
    "AUTO_BUCKET_PADDING",
    "AutoencoderTrainingPlan",
    "DiffusionTrainingPlan",
    "LatentDataModule",
    "LatentStageTrainRunner",
    "LengthBucketBatchSampler",
    "SparseDataSplitter",
    "StageTrainRunner",
    "global_rank",
    "TokenizingDataModule",
    "adam_optimizer",
    "ValueRules",
    "check_values",
    "condition_block",
    "data_block",
    "stream_batches",
    "to_scipy",
    "lr_factor",
    "padding_factor",
    "quiet_sparse_loading",
    "replicas_and_rank",
    "row_lengths",
    "tokenize_batch",
    "uses_distributed_sampler",
]
