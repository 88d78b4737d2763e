"""MuData support: one feature index space across several modalities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import (
    MuDataCategoricalJointObsField,
    MuDataCategoricalObsField,
    MuDataWrapper,
)

from sc_sed.data import MAX_VOCABULARY, histogram_quantile

from ._conditions import check_obs_keys
from ._fields import SparseLayerField
from ._registry import SETUP_ARGS_KEY, setup_arg, state_registry

if TYPE_CHECKING:
    from mudata import MuData

MuDataSparseLayerField = MuDataWrapper(SparseLayerField)


def data_keys(registry: dict) -> list[str]:
    """Registry keys of the data blocks: ``["X"]`` for AnnData, one per modality for MuData."""
    modalities = setup_arg(registry, "modalities")
    if not modalities:
        return [REGISTRY_KEYS.X_KEY]
    return [REGISTRY_KEYS.X_KEY] + [f"{REGISTRY_KEYS.X_KEY}_{m}" for m in modalities[1:]]


def combined_stats(registry: dict) -> dict:
    """Statistics of all data blocks side by side, as for one joint feature space.

    ``max_nonzero`` is the sum of the blocks' longest rows (an upper bound of the longest
    joint row).
    """
    blocks = [state_registry(registry, k)[SparseLayerField.STATS_KEY] for k in data_keys(registry)]
    if len(blocks) == 1:
        return blocks[0]
    return {
        "n_obs": blocks[0]["n_obs"],
        "n_vars": sum(b["n_vars"] for b in blocks),
        "max_nonzero": sum(b["max_nonzero"] for b in blocks),
        "mean_nonzero": sum(b.get("mean_nonzero", 0.0) for b in blocks),
        "is_integer": all(b["is_integer"] for b in blocks),
        "has_negative": any(b["has_negative"] for b in blocks),
        "min_value": min(b["min_value"] for b in blocks),
        "n_nonfinite": sum(b["n_nonfinite"] for b in blocks),
        "seen": np.concatenate([np.asarray(b["seen"]) for b in blocks]),
        **{key: _joined(blocks, key) for key in ("n_detected", "value_sum", "log_value_sum")},
        **_value_profile(blocks),
    }


def _joined(blocks: list[dict], key: str) -> np.ndarray | None:
    """Join the blocks' per-feature arrays ``key`` end to end (None if a block lacks it)."""
    if any(b.get(key) is None for b in blocks):
        return None
    return np.concatenate([np.asarray(b[key]) for b in blocks])


def _value_profile(blocks: list[dict]) -> dict:
    """Combine the blocks' non-zero value statistics (all None if a block lacks them).

    Largest ``|value|``: the blocks' largest; histogram: the sum; median: read from the
    summed histogram; vocabulary: the union with summed counts, dropped (``n_distinct_values``
    set past :data:`MAX_VOCABULARY`) when a block has none or the union is longer.
    """
    keys = ("max_abs_value", "median_abs_value", "n_distinct_values", "log_value_histogram")
    out = dict.fromkeys((*keys, "value_vocabulary", "vocabulary_counts"))
    if any(b.get(key) is None for b in blocks for key in keys if key != "median_abs_value"):
        return out
    histogram = np.sum([np.asarray(b["log_value_histogram"]) for b in blocks], axis=0)
    out["max_abs_value"] = max(float(b["max_abs_value"]) for b in blocks)
    out["median_abs_value"] = histogram_quantile(histogram, 0.5) if histogram.any() else None
    out["log_value_histogram"] = histogram
    out["n_distinct_values"] = MAX_VOCABULARY + 1
    if all(b.get("value_vocabulary") is not None for b in blocks):
        values = np.concatenate([np.asarray(b["value_vocabulary"]) for b in blocks])
        counts = np.concatenate([np.asarray(b["vocabulary_counts"]) for b in blocks])
        vocabulary, where = np.unique(values, return_inverse=True)
        if vocabulary.size <= MAX_VOCABULARY:
            out["n_distinct_values"] = int(vocabulary.size)
            out["value_vocabulary"] = vocabulary.astype(np.float64)
            out["vocabulary_counts"] = np.bincount(where, weights=counts).astype(np.int64)
    return out


def _check_modalities(mdata: MuData, modalities: Sequence[str] | None) -> list[str]:
    chosen = list(mdata.mod) if modalities is None else list(modalities)
    missing = [m for m in chosen if m not in mdata.mod]
    if missing or not chosen:
        msg = (
            f"Modalities {missing or chosen} not found in mdata.mod (available: {list(mdata.mod)})."
        )
        raise KeyError(msg)
    return chosen


class MuDataSetupMixin:
    """``setup_mudata`` for SED: the chosen modalities form one feature index space."""

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        modalities: Sequence[str] | None = None,
        layer: str | None = None,
        labels_key: str | None = None,
        batch_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Register a MuData: the modalities' features are joined, in order, into one space.

        Parameters
        ----------
        mdata
            MuData whose modalities hold the same rows.
        modalities
            Modalities to model, in order (default: all, in ``mdata.mod`` order).
        layer
            Layer to read in every modality (None: ``X``).
        labels_key, batch_key, categorical_covariate_keys
            Columns of the global ``mdata.obs`` to condition generation on.
        **kwargs
            Passed to :meth:`~scvi.data.AnnDataManager.register_fields`.
        """
        modalities = _check_modalities(mdata, modalities)
        check_obs_keys(
            mdata,
            {
                "labels_key": labels_key,
                "batch_key": batch_key,
                "categorical_covariate_keys": categorical_covariate_keys,
            },
        )
        setup_method_args = cls._get_setup_method_args(**locals())
        setup_method_args[SETUP_ARGS_KEY]["modalities"] = modalities
        keys = data_keys(setup_method_args)
        fields = [
            MuDataSparseLayerField(key, layer, mod_key=mod, mod_required=True)
            for key, mod in zip(keys, modalities, strict=True)
        ]
        fields += [
            MuDataCategoricalObsField(REGISTRY_KEYS.LABELS_KEY, labels_key, mod_key=None),
            MuDataCategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key, mod_key=None),
            MuDataCategoricalJointObsField(
                REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys, mod_key=None
            ),
        ]
        adata_manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(mdata, **kwargs)
        cls.register_manager(adata_manager)


def joint_reference(adata, registry: dict):
    """Return a one-row AnnData with the joint ``var`` and ``uns`` (AnnData: the data itself).

    For a MuData model this is :func:`sc_sed.data.concat_modalities` of the first row, so
    ``var`` holds every modality's features in order with a ``modality`` column, and
    ``uns["sc_sed_modalities"]`` what :func:`sc_sed.data.split_modalities` needs.
    """
    modalities = setup_arg(registry, "modalities")
    if not modalities:
        return adata
    from sc_sed.data import concat_modalities

    ref = concat_modalities(adata[:1], modalities=modalities, layer=setup_arg(registry, "layer"))
    for key, value in adata.uns.items():
        if key.startswith("sc_sed_") and key not in ref.uns:
            ref.uns[key] = value
    return ref


def to_mudata(adata):
    """Split a generated joint AnnData back into the model's modalities."""
    from sc_sed.data import split_modalities

    mdata = split_modalities(adata)
    mdata.uns.update({k: v for k, v in adata.uns.items() if k == "sc_sed"})
    return mdata
