"""scvi-tools registry field for SED's sparse data layer."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data.fields import LayerField

from sc_sed.data import MatrixStats, check_matrix


def where_data(layer: str | None) -> str:
    """Name the registered matrix for messages: ``adata.X`` or ``adata.layers[layer]``."""
    return "adata.X" if layer is None else f"adata.layers[{layer!r}]"


def validate_stats(stats: MatrixStats, where: str) -> dict:
    """Raise when the data cannot be trained on; else return the statistics as a registry dict.

    Parameters
    ----------
    stats
        Statistics of the data (:func:`~sc_sed.data.matrix_stats` or
        :class:`~sc_sed.data.RunningMatrixStats`).
    where
        What the data are, for the messages (e.g. ``"adata.X"``).

    Returns
    -------
    ``stats`` as a dict (``seen`` a NumPy array).
    """
    if stats.n_nonfinite:
        msg = (
            f"{where} contains {stats.n_nonfinite} NaN or infinite values; SED needs finite "
            "values. Replace them (e.g. with np.nan_to_num) or drop the affected rows."
        )
        raise ValueError(msg)
    if stats.n_obs < 2:
        msg = (
            f"{where} has {stats.n_obs} row; SED needs at least 2 rows to train (the latent "
            "statistics of one row are undefined)."
        )
        raise ValueError(msg)
    if stats.max_nonzero == 0:
        msg = (
            f"{where} is all zeros; SED models the non-zero entries, so there is nothing to learn."
        )
        raise ValueError(msg)
    out = stats.to_dict()
    out["seen"] = np.asarray(out["seen"])
    return out


class SparseLayerField(LayerField):
    """The data matrix of an SED model: validated, never modified, summarised once.

    The data are read by :func:`~sc_sed.data.check_matrix`'s rules: duplicated
    ``(row, col)`` entries summed, stored zeros dropped, NaN/inf refused (negative values
    are refused later, by every value likelihood but ``"gaussian"``).

    Unlike scvi-tools' :class:`~scvi.data.fields.LayerField` it does not reformat the
    user's matrix in place (dense or CSC data are accepted and read as they are), and it
    stores what the model needs in the registry, so a saved model can be rebuilt without
    its AnnData: the longest row (``max_nonzero``), whether values are integers or
    negative, and which features are ever non-zero (``seen``).
    """

    STATS_KEY = "sc_sed_stats"

    def __init__(self, registry_key: str, layer: str | None):
        super().__init__(registry_key, layer, is_count_data=False, correct_data_format=False)

    def validate_field(self, adata: AnnData) -> None:
        """Check the layer exists, is non-empty and numeric."""
        if self.attr_key is not None and self.attr_key not in adata.layers:
            msg = (
                f"Layer {self.attr_key!r} not found in adata.layers "
                f"(available: {list(adata.layers.keys())}). Pass an existing `layer=` or "
                "`layer=None` to use adata.X."
            )
            raise KeyError(msg)
        if adata.n_obs == 0 or adata.n_vars == 0:
            msg = f"The AnnData is empty ({adata.n_obs} × {adata.n_vars}); SED needs rows and features."
            raise ValueError(msg)
        if not adata.var_names.is_unique:
            dups = adata.var_names[adata.var_names.duplicated()].unique()[:5].tolist()
            msg = (
                f"adata.var_names has duplicates {dups}; SED needs one name per feature. "
                "Make them unique first, e.g. `adata.var_names_make_unique()`."
            )
            raise ValueError(msg)
        x = self.get_field_data(adata)
        dtype = getattr(x, "dtype", None)
        if dtype is None or dtype.kind not in "biuf":
            msg = (
                f"{where_data(self.attr_key)} has non-numeric dtype {dtype}; convert it to "
                "numbers first, e.g. `adata.X = adata.X.astype(np.float32)`."
            )
            raise TypeError(msg)
        super().validate_field(adata)

    def _stats(self, adata: AnnData) -> dict:
        where = where_data(self.attr_key)
        return validate_stats(check_matrix(self.get_field_data(adata), what=where), where)

    def register_field(self, adata: AnnData) -> dict:
        """Register the layer and record its summary statistics."""
        state = super().register_field(adata)
        state[self.STATS_KEY] = self._stats(adata)
        return state

    def transfer_field(self, state_registry: dict, adata_target: AnnData, **kwargs) -> dict:
        """Register a new AnnData with the *training* statistics.

        The new layer is validated (present, numeric, as many features) but its statistics
        are not computed: the model keeps those of its training data.
        """
        n_vars = state_registry[self.N_VARS_KEY]
        if adata_target.n_vars != n_vars:
            msg = f"The AnnData has {adata_target.n_vars} features; the model was trained on {n_vars}."
            raise ValueError(msg)
        state = LayerField.register_field(self, adata_target)  # layout only, no statistics
        state[self.STATS_KEY] = state_registry[self.STATS_KEY]
        return state

    def get_summary_stats(self, state_registry: dict) -> dict:
        """Summary stats: scvi-tools' ``n_vars``/``n_cells`` plus the longest row."""
        summary = super().get_summary_stats(state_registry)
        key = (
            "max_nonzero"
            if self.registry_key == REGISTRY_KEYS.X_KEY
            else f"max_nonzero_{self.registry_key}"
        )
        summary[key] = int(state_registry[self.STATS_KEY]["max_nonzero"])
        return summary
