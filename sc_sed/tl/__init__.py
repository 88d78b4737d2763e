"""Evaluation tools: compare real and synthetic AnnData with the same features.

Model-independent (no torch): metrics (:func:`evaluate`), sparsity statistics
(:func:`sparsity_stats`; both sets' checked matrices: :func:`shared_matrices`), recommender measures of users x items tables
(:func:`interaction_metrics`), what gives synthetic rows away to a classifier
(:func:`discriminator_features`, with :func:`row_summaries`), marker fidelity
(:func:`marker_fidelity`, with its helpers :func:`normalized_pair` and :func:`top_markers`),
a joint embedding of both sets (:func:`co_embed`) and, for detector images, jet observables
(:func:`jet_observables`, :func:`compare_physics`).
"""

from ._discriminator import discriminator_features, row_summaries
from ._embed import co_embed
from ._evaluate import evaluate
from ._interactions import interaction_metrics
from ._markers import marker_fidelity, normalized_pair, top_markers
from ._physics import compare_physics, jet_observables
from ._sparsity import shared_matrices, sparsity_stats

__all__ = [
    "co_embed",
    "compare_physics",
    "discriminator_features",
    "evaluate",
    "interaction_metrics",
    "jet_observables",
    "marker_fidelity",
    "normalized_pair",
    "row_summaries",
    "shared_matrices",
    "sparsity_stats",
    "top_markers",
]
