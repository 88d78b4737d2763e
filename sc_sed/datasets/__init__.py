"""Loaders returning sparse AnnData ready for :meth:`sc_sed.SEDModel.setup_anndata`.

Offline: :func:`pbmc68k_counts` (real UMI counts bundled with scanpy), :func:`digits`
(scikit-learn's 8×8 digits as sparse images) and the seeded generators
:func:`synthetic_counts`, :func:`synthetic_showers`, :func:`synthetic_interactions`.
Online (downloads on first use): :func:`pbmc3k_counts`.
"""

from ._digits import digits
from ._pbmc import pbmc3k_counts, pbmc68k_counts
from ._recsys import synthetic_interactions
from ._showers import synthetic_showers
from ._synthetic import synthetic_counts

__all__ = [
    "digits",
    "pbmc3k_counts",
    "pbmc68k_counts",
    "synthetic_counts",
    "synthetic_interactions",
    "synthetic_showers",
]
