"""Sparse data handling: CSR <-> (index, value) tokens, and adapters to sparse AnnData."""

from ._checks import canonical_csr, check_values, get_matrix
from ._coo import from_coo, from_dense, to_coo, to_dense
from ._images import from_images, to_images
from ._interactions import from_interactions, to_interactions
from ._mudata import concat_modalities, split_modalities
from ._pca import sparse_pca
from ._running_stats import RunningMatrixStats
from ._shards import join_shards
from ._stats import MAX_VOCABULARY as MAX_VOCABULARY  # distinct values the statistics keep
from ._stats import MatrixStats, histogram_quantile, matrix_stats, row_nnz
from ._validate import check_matrix, validated_csr
from ._zarr import read_lazy_zarr

# The token functions need torch; load them on first use so that the adapters (and
# sc_sed.tl / sc_sed.pl, which use them) import without torch.
_TOKEN_NAMES = (
    "LongRows",
    "TokenBatch",
    "csr_to_tokens",
    "pairs_to_csr",
    "tokens_from_csr",
    "tokens_from_tensor",
    "tokens_to_csr",
)


def __getattr__(name: str):
    if name in _TOKEN_NAMES:
        from . import _tokens

        return getattr(_tokens, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "check_matrix",
    "validated_csr",
    "MatrixStats",
    "RunningMatrixStats",
    "matrix_stats",
    "row_nnz",
    "histogram_quantile",
    "sparse_pca",
    "LongRows",
    "TokenBatch",
    "csr_to_tokens",
    "pairs_to_csr",
    "tokens_from_csr",
    "tokens_from_tensor",
    "tokens_to_csr",
    "from_coo",
    "from_dense",
    "to_coo",
    "to_dense",
    "from_images",
    "to_images",
    "from_interactions",
    "to_interactions",
    "concat_modalities",
    "split_modalities",
    "join_shards",
    "read_lazy_zarr",
    "canonical_csr",
    "check_values",
    "get_matrix",
]
