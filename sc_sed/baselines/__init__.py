"""Comparison baselines: dense diffusion on all features (raw and thresholded), scVI's prior.

Each model takes the same AnnData as :class:`sc_sed.SEDModel`, trains with ``.train()`` and
returns from ``.generate()`` an AnnData shaped like :meth:`sc_sed.SEDModel.generate` output,
so :func:`sc_sed.tl.evaluate` compares them side by side.
"""

from ._dense import DenseDDPM
from ._dense_module import DenseDiffusionModule
from ._scvi import ScVIPrior

__all__ = ["DenseDDPM", "DenseDiffusionModule", "ScVIPrior"]
