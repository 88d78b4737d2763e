"""Evaluation tools: compare real and synthetic AnnData with the same features.

Model-independent (no torch): metrics (:func:`evaluate`), sparsity statistics
(:func:`sparsity_stats`), marker fidelity (:func:`marker_fidelity`), a joint embedding of
both sets (:func:`co_embed`) and, for detector images, jet observables
(:func:`jet_observables`, :func:`compare_physics`).
"""

from ._embed import co_embed
from ._evaluate import evaluate
from ._markers import marker_fidelity
from ._physics import compare_physics, jet_observables
from ._sparsity import sparsity_stats

__all__ = [
    "co_embed",
    "compare_physics",
    "evaluate",
    "jet_observables",
    "marker_fidelity",
    "sparsity_stats",
]
