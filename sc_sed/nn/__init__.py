"""Neural network building blocks of SED (tensors only; no AnnData)."""

from ._attention import Attention, KVCache, TransformerBlock
from ._decoder import ARDecoder
from ._denoiser import LatentDenoiser, ResidualBlock
from ._embeddings import IndexEmbedding, NoiseLevelEmbedding, ValueEmbedding, sinusoidal
from ._encoder import SetEncoder
from ._heads import FactorisedIndexHead, FlatIndexHead, IndexHead, make_index_head
from ._likelihoods import ValueHead, sample_gamma, value_locations
from ._spectral import SpectralFeatures, transform_values

__all__ = [
    "ARDecoder",
    "Attention",
    "FactorisedIndexHead",
    "FlatIndexHead",
    "IndexEmbedding",
    "IndexHead",
    "KVCache",
    "LatentDenoiser",
    "NoiseLevelEmbedding",
    "ResidualBlock",
    "SetEncoder",
    "SpectralFeatures",
    "TransformerBlock",
    "ValueEmbedding",
    "ValueHead",
    "make_index_head",
    "sample_gamma",
    "sinusoidal",
    "transform_values",
    "value_locations",
]
