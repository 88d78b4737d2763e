"""AnnData-facing models."""

from sc_sed._defaults import (
    MODULE_DEFAULTS,
    PRESETS,
    ModuleDefaults,
    PresetTable,
    choose_sizes,
    upgrade_init_params,
)

from ._conditions import ConditionSpec, draw_conditions
from ._output import condition_obs, synthetic_anndata
from ._sed import SEDModel
from ._stream import check_out_path

__all__ = [
    "MODULE_DEFAULTS",
    "PRESETS",
    "ModuleDefaults",
    "PresetTable",
    "SEDModel",
    "ConditionSpec",
    "check_out_path",
    "condition_obs",
    "draw_conditions",
    "synthetic_anndata",
    "choose_sizes",
    "upgrade_init_params",
]
