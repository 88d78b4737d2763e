"""Plots comparing real and synthetic AnnData (matplotlib only, scanpy look).

Every function takes ``ax=`` (or ``axs=`` for several panels) and ``show=``, and returns the
Axes (a list for several panels) unless the figure is shown.
"""

from ._discriminator import discriminator_features
from ._dropout import dropout_pattern
from ._genes_detected import genes_detected
from ._history import history
from ._interactions import interactions
from ._markers import gene_means, markers
from ._metrics import metrics
from ._umap import umap

__all__ = [
    "discriminator_features",
    "dropout_pattern",
    "gene_means",
    "genes_detected",
    "history",
    "interactions",
    "markers",
    "metrics",
    "umap",
]
