"""AnnData-facing models."""

from ._conditions import ConditionSpec, draw_conditions
from ._output import condition_obs, synthetic_anndata
from ._sed import SEDModel
from ._stream import check_out_path

__all__ = [
    "SEDModel",
    "ConditionSpec",
    "check_out_path",
    "condition_obs",
    "draw_conditions",
    "synthetic_anndata",
]
