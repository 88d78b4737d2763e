"""SEDModel: the AnnData-facing model (registry, training, generation, save/load)."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalJointObsField, CategoricalObsField
from scvi.model.base import BaseModelClass

from sc_sed import _defaults
from sc_sed._defaults import SIZE_FIELDS, Preset, choose_sizes, denoiser_widths
from sc_sed._docs import docs
from sc_sed._validation import check_int
from sc_sed.data import check_matrix, pairs_to_csr
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY, SEDModule
from sc_sed.train import global_rank, quiet_sparse_loading, tokenize_batch

from . import _io
from ._conditions import check_obs_keys, condition_specs
from ._datamodule import SETUP_METHOD_NAME as DATAMODULE_SETUP
from ._datamodule import anndata_setup_method, datamodule_registry
from ._devices import resolve_device
from ._fields import SparseLayerField, where_data
from ._generation import GenerationMixin, check_positive_int, check_seed, check_temperature
from ._mudata import MuDataSetupMixin, combined_stats, data_keys, joint_reference
from ._registry import SETUP_ARGS_KEY, setup_arg, state_registry
from ._shards import block_seed
from ._training import TrainingMixin

if TYPE_CHECKING:
    from anndata import AnnData
    from lightning.pytorch import LightningDataModule
    from mudata import MuData

logger = logging.getLogger(__name__)

FACTORISED_HEAD_MIN_FEATURES = 512


def check_var_names(adata: AnnData | MuData, registry: dict) -> None:
    """Raise when ``adata``'s features differ from the training features (names and order)."""
    modalities = setup_arg(registry, "modalities")
    blocks = (
        [(m, adata.mod[m].var_names) for m in modalities]
        if modalities and hasattr(adata, "mod")
        else [(None, adata.var_names)]
    )
    for key, (mod, names) in zip(data_keys(registry), blocks, strict=False):
        expected = np.asarray(state_registry(registry, key)["column_names"]).astype(str)
        got = np.asarray(names).astype(str)
        if got.shape == expected.shape and (got == expected).all():
            continue
        where = "adata.var_names" if mod is None else f"mdata.mod[{mod!r}].var_names"
        if got.shape != expected.shape:
            detail = f"{got.size} features, the model was trained on {expected.size}"
        else:
            i = int(np.flatnonzero(got != expected)[0])
            detail = f"position {i} is {got[i]!r}, the model was trained on {expected[i]!r}"
        msg = (
            f"{where} differ from the training features ({detail}). Subset and order the "
            "features as in training, e.g. `adata[:, model.training_var_.index]`."
        )
        raise ValueError(msg)


def check_indices(indices: Sequence[int] | None, n_obs: int) -> np.ndarray:
    """Row positions to use: all rows for None, else a non-empty 1-D integer list in range."""
    if indices is None:
        return np.arange(n_obs)
    rows = np.asarray(indices)
    if rows.ndim != 1 or rows.size == 0 or rows.dtype.kind not in "iu":
        msg = f"indices must be a non-empty 1-D list of integer row positions, got {indices!r}."
        raise ValueError(msg)
    if rows.min() < 0 or rows.max() >= n_obs:
        msg = f"indices must lie in [0, {n_obs}), got values from {rows.min()} to {rows.max()}."
        raise ValueError(msg)
    return rows


def _detection_rate(stats: dict) -> torch.Tensor | None:
    """Per-feature fraction of registered rows with a non-zero (None for old registries)."""
    n_detected = stats.get("n_detected")
    if n_detected is None or not stats["n_obs"]:
        return None
    return torch.as_tensor(np.asarray(n_detected), dtype=torch.float32) / stats["n_obs"]


#: Value transform of the encoder's principal components, by value likelihood.
SPECTRAL_TRANSFORMS = {
    "ztnb": "lognorm",
    "ztpoisson": "lognorm",
    "lognormal": "log1p",
    "gaussian": "identity",
    "categorical": "log1p",
    "logcount": "lognorm",
}
ValueLikelihoodChoice = Literal[
    "auto", "ztnb", "ztpoisson", "lognormal", "gaussian", "categorical", "logcount"
]


def _n_components(n_encoder_pcs: int, stats: dict) -> int:
    """Principal components the encoder reads: as asked, at most ``min(rows, features) - 1``."""
    check_int(n_encoder_pcs, "n_encoder_pcs", 0, "a non-negative integer (0: none)")
    return max(0, min(n_encoder_pcs, int(stats["n_obs"]) - 1, int(stats["n_vars"]) - 1))


def _value_sums(stats: dict) -> tuple[torch.Tensor, ...] | None:
    """Per-feature non-zero counts and value sums of the registry (None for old registries)."""
    sums = [stats.get(k) for k in ("n_detected", "value_sum", "log_value_sum")]
    if any(v is None for v in sums):
        return None
    return tuple(torch.as_tensor(np.asarray(v)) for v in sums)


def _auto_likelihood(stats: dict) -> str:
    """Pick the value likelihood of ``value_likelihood="auto"`` (SEDModel docstring table)."""
    integer = stats["is_integer"] and not stats["has_negative"]
    if stats.get("n_distinct_values") is None:  # statistics saved before the rules' inputs
        return "ztnb" if integer else "lognormal"
    counts = stats.get("vocabulary_counts")
    if (
        not stats["has_negative"]
        and counts is not None
        and len(counts) <= _defaults.CATEGORICAL_MAX_VALUES
        and counts[-1] >= _defaults.CATEGORICAL_MIN_TOP_SHARE * np.sum(counts)
    ):
        return "categorical"
    median, top = stats.get("median_abs_value"), stats.get("max_abs_value")
    if (
        integer
        and median is not None
        and median >= _defaults.LOGCOUNT_MIN_MEDIAN
        and top >= _defaults.LOGCOUNT_MIN_SPREAD * median
    ):
        return "logcount"
    return "ztnb" if integer else "lognormal"


def _value_support(likelihood: str, stats: dict) -> dict[str, Any]:
    """Return the bounded value laws' module keywords: the vocabulary or the largest value."""
    if likelihood == "categorical":
        vocabulary, counts = stats.get("value_vocabulary"), stats.get("vocabulary_counts")
        if vocabulary is None or counts is None:
            msg = (
                "value_likelihood='categorical' needs at most 256 distinct non-zero values "
                "recorded at setup, but the registered data have more (or were registered "
                "by an older version). Pick another value_likelihood (e.g. 'lognormal'), or "
                "register data with few distinct values."
            )
            raise ValueError(msg)
        # the generated output is float32: merge values that float32 cannot tell apart
        vocab32, where = np.unique(np.asarray(vocabulary, dtype=np.float32), return_inverse=True)
        merged = np.bincount(where, weights=np.asarray(counts, dtype=np.float64))
        # NumPy (host) arrays: a saved model is rebuilt on the meta device, then filled
        return {"value_vocabulary": vocab32, "value_vocabulary_counts": merged}
    if likelihood == "logcount":
        top = stats.get("max_abs_value")
        if top is None or top > _defaults.LOGCOUNT_MAX_VALUE:
            msg = (
                f"value_likelihood='logcount' models counts up to 2**24 = "
                f"{int(_defaults.LOGCOUNT_MAX_VALUE)} (float32 integers), but the largest "
                f"registered value is {top!r} (None: registered by an older version). "
                "Use 'lognormal' for such values, or register the data again."
            )
            raise ValueError(msg)
        value_max = min(_defaults.LOGCOUNT_HEADROOM * max(top, 1.0), _defaults.LOGCOUNT_MAX_VALUE)
        return {"value_max": float(np.floor(value_max))}
    return {}


@docs.dedent
class SEDModel(MuDataSetupMixin, TrainingMixin, GenerationMixin, BaseModelClass):
    """Sparsity-Exploiting Diffusion for sparse AnnData.

    Rows are encoded from their non-zero (feature, value) pairs by a set encoder,
    modelled by diffusion in the latent space, and decoded autoregressively into
    strictly increasing (feature, value) pairs; every other entry is an exact zero.

    Sizes left at None, and the epochs and minibatch of :meth:`train`, come from one
    recipe chosen from the data and the device (the table in :mod:`sc_sed._defaults`,
    :data:`~sc_sed.model.PRESETS`): on a CPU a small model (width 64, one layer) trained
    with 16-row minibatches, on a GPU a larger one. A value you pass always wins. The
    chosen values are logged once and kept in :attr:`recipe_` (and in a saved model).
    Measurements of these defaults are in ``benchmarks/README.md``.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (None when loading a saved model
        or training from a data module).
    registry
        Registry of a saved model (used by :meth:`load`), or of a data module from
        :meth:`setup_datamodule`.
    n_latent
        Size of the latent space (default: the recipe's, 32 on a CPU, 64 on a GPU).
    n_hidden
        Transformer width of the encoder and decoder (recipe: 64 / 128); the
        feed-forward width ``n_ff`` is twice this unless given.
    n_layers
        Transformer layers of the encoder and of the decoder (recipe: 1 / 2).
    n_heads
        Attention heads (recipe: 2 / 4); must divide ``n_hidden``.
    index_head
        ``"flat"`` (one softmax over all features, O(D) per token), ``"factorised"``
        (block then offset, O(√D) per token) or ``"auto"`` (factorised from
        512 features on, where it is already cheaper than the flat head).
    value_likelihood
        Likelihood of the non-zero values (:class:`~sc_sed.nn.ValueHead`):
        ``"ztnb"`` (zero-truncated negative binomial), ``"ztpoisson"``, ``"lognormal"``,
        ``"gaussian"`` (signed values), ``"categorical"`` (one of the distinct training
        values, e.g. ratings; generated values are exactly those), ``"logcount"``
        (integer counts spanning decades: a discretised logistic on ``log x`` whose
        support ends at 10 times the largest training value, at most 2**24; generated
        values are integers in that range), or ``"auto"``, which picks by the first
        row that applies of this table (thresholds in :mod:`sc_sed._defaults`; the
        statistics are those of the registered data, kept in the registry). The choice
        is kept in :attr:`value_likelihood_`.

        ==============================================  =================
        registered non-zero values                      choice
        ==============================================  =================
        <= 32 distinct; the largest is >= 1/20 of them  ``"categorical"``
        integers; median >= 10 and max/median >= 100    ``"logcount"``
        other non-negative integers                     ``"ztnb"``
        other non-negative values                       ``"lognormal"``
        ==============================================  =================

        Ratings and binary interactions fall in the first row (their top value is
        frequent; a count table's largest value is a rare tail value), play counts in the
        second, single-cell UMI counts in the third (median 1). The median comes from a
        histogram of ``log10 |value|`` in 1/20-decade bins.
        Negative values need ``"gaussian"``. Statistics saved before these rules had
        their inputs pick between ``"ztnb"`` and ``"lognormal"`` only.
    max_nonzero
        Longest row the decoder generates (default: the longest registered row).
    on_long_rows
        Rows longer than ``max_nonzero`` raise (``"error"``) or keep their
        ``max_nonzero`` largest values (``"truncate"``).
    mask_unseen_features
        Never generate features that are zero in every registered row. Turn it off when
        generated rows may hold features the training rows never showed (e.g. new items).
    preset
        Column of the recipe table: ``"cpu"``, ``"gpu"``, or ``"auto"`` (``"gpu"`` when
        CUDA is available, else ``"cpu"``). It sets the sizes and the training budgets
        you do not give.
    **module_kwargs
        Further :class:`~sc_sed.module.SEDModule` keywords, whose defaults are
        :data:`~sc_sed.model.MODULE_DEFAULTS`: e.g. ``n_ff``, ``dropout_rate``,
        ``kl_weight``, ``cond_dropout``, ``block_size``, ``denoiser_widths`` (recipe:
        8, 8, 4, 2 times ``n_latent``), and
        ``n_encoder_pcs``: the encoder also reads each row's scores on this many
        principal components of the registered rows (``normalize_total`` + ``log1p`` for
        counts), fitted once when training starts (recipe: 32, at most
        ``min(rows, features) - 1``; 0 for none). The research switches there
        (``context_width``, ``value_latent_term``, ``hazard_init``, ...) hold the
        measured winners.

    Examples
    --------
    >>> adata = sc_sed.datasets.pbmc68k_counts()
    >>> sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="bulk_labels")
    >>> model = sc_sed.SEDModel(adata)
    >>> model.train()
    >>> synth = model.generate(n_cells=500)
    """

    _module_cls = SEDModule

    def __init__(
        self,
        adata: AnnData | None = None,
        registry: dict | None = None,
        n_latent: int | None = None,
        n_hidden: int | None = None,
        n_layers: int | None = None,
        n_heads: int | None = None,
        index_head: Literal["auto", "flat", "factorised"] = "auto",
        value_likelihood: ValueLikelihoodChoice = "auto",
        max_nonzero: int | None = None,
        on_long_rows: Literal["error", "truncate"] = "error",
        mask_unseen_features: bool = True,
        preset: Preset = "auto",
        **module_kwargs: Any,
    ):
        super().__init__(adata, registry)
        stats = self._data_stats
        self.value_likelihood_ = self._resolve_likelihood(value_likelihood, stats)
        self.index_head_ = self._resolve_index_head(index_head, stats["n_vars"])
        self.max_nonzero_ = int(max_nonzero or max(1, stats["max_nonzero"]))
        if self.max_nonzero_ < 1:
            raise ValueError(f"max_nonzero must be >= 1, got {max_nonzero}.")
        self.on_long_rows = on_long_rows
        self._conditions = condition_specs(self.registry_)
        allowed = torch.as_tensor(np.asarray(stats["seen"])) if mask_unseen_features else None
        module_kwargs = dict(module_kwargs)
        sizes = self._choose_sizes(
            preset,
            stats,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            n_heads=n_heads,
            n_ff=module_kwargs.pop("n_ff", None),
            n_encoder_pcs=module_kwargs.pop("n_encoder_pcs", None),
        )
        if module_kwargs.get("denoiser_widths") is None:
            module_kwargs["denoiser_widths"] = denoiser_widths(sizes["n_latent"])
        # kept so that train(seed=...) can draw the initial weights again from its seed
        self._module_kwargs = dict(
            n_features=stats["n_vars"],
            max_nonzero=self.max_nonzero_,
            **{k: v for k, v in sizes.items() if k != "preset"},
            index_head=self.index_head_,
            value_likelihood=self.value_likelihood_,
            allowed_features=allowed,
            detection_rate=_detection_rate(stats),
            spectral_transform=SPECTRAL_TRANSFORMS[self.value_likelihood_],
            value_sums=_value_sums(stats),
            **_value_support(self.value_likelihood_, stats),
            n_cats_per_cond=[c.n_cats for c in self._conditions],
            **module_kwargs,
        )
        self.module = self._module_cls(**self._module_kwargs)
        self.autoencoder_trained_ = False
        self.diffusion_trained_ = False
        if adata is not None:
            # kept (and saved) so generated AnnData carry the training feature annotations
            # (pixel coordinates, modalities, item metadata) even without the AnnData
            ref = joint_reference(adata, self.registry_)
            self.training_var_ = ref.var.copy()
            self.training_uns_ = {k: v for k, v in ref.uns.items() if k.startswith("sc_sed_")}
        else:  # a saved model overwrites these when it is loaded
            names = state_registry(self.registry_, REGISTRY_KEYS.X_KEY)["column_names"]
            self.training_var_ = pd.DataFrame(index=pd.Index(np.asarray(names).astype(str)))
            self.training_uns_ = {}
        cond = ", ".join(c.obs_key for c in self._conditions) or "none"
        self._model_summary_string = (
            f"SEDModel: {stats['n_vars']} features, preset={sizes['preset']!r}, "
            f"n_latent={sizes['n_latent']}, n_hidden={sizes['n_hidden']}, "
            f"n_layers={sizes['n_layers']}, index_head={self.index_head_!r}, "
            f"value_likelihood={self.value_likelihood_!r}, max_nonzero={self.max_nonzero_}, "
            f"conditions: {cond}."
        )
        self.init_params_ = self._get_init_params(locals())
        # the chosen sizes are saved explicitly: a loaded model is rebuilt with them anywhere
        self.init_params_["non_kwargs"].update(
            {k: sizes[k] for k in ("preset", "n_latent", "n_hidden", "n_layers", "n_heads")}
        )
        self.init_params_["kwargs"] = {
            "module_kwargs": {
                **module_kwargs,
                "n_ff": sizes["n_ff"],
                "n_encoder_pcs": sizes["n_encoder_pcs"],
            }
        }

    @staticmethod
    def _choose_sizes(preset: str, stats: dict, **given: Any) -> dict[str, Any]:
        """Return the recipe's module sizes with the user's values on top (logged once)."""
        if given["n_ff"] is None and given["n_hidden"] is not None:
            given["n_ff"] = 2 * given["n_hidden"]
        sizes = choose_sizes(preset, given)
        sizes["n_encoder_pcs"] = _n_components(sizes["n_encoder_pcs"], stats)
        chosen = [k for k, v in given.items() if v is None]
        logger.info(
            "SEDModel recipe %r for %d rows x %d features: %s (chosen: %s; the rest given).",
            sizes["preset"], int(stats["n_obs"]), int(stats["n_vars"]),
            ", ".join(f"{k}={v}" for k, v in sizes.items() if k != "preset"),
            ", ".join(chosen) or "none",
        )  # fmt: skip
        return sizes

    @property
    def recipe_(self) -> dict[str, Any]:
        """Sizes and training budgets this model was built and trained with.

        The preset, the module sizes (with the denoiser's widths), and, once a stage has
        trained, its minibatch size and epochs (``batch_size``, ``max_epochs``,
        ``diffusion_batch_size``, ``diffusion_max_epochs``).
        """
        non_kwargs = self.init_params_["non_kwargs"]
        module_kwargs = self.init_params_["kwargs"].get("module_kwargs", {})
        out = {k: non_kwargs[k] for k in ("preset", *SIZE_FIELDS) if k in non_kwargs}
        out.update({k: module_kwargs[k] for k in SIZE_FIELDS if k in module_kwargs})
        if "denoiser_widths" in module_kwargs:
            out["denoiser_widths"] = tuple(module_kwargs["denoiser_widths"])
        for name in ("batch_size", "max_epochs", "diffusion_batch_size", "diffusion_max_epochs"):
            value = getattr(self, f"recipe_{name}_", None)
            if value is not None:
                out[name] = value
        return out

    @recipe_.setter
    def recipe_(self, value: Any) -> None:
        # scvi-tools' pickle loader (convert_legacy_save) sets every saved attribute; the
        # recipe follows from the init parameters and the budget attributes instead
        pass

    # -- setup ---------------------------------------------------------------------------
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        labels_key: str | None = None,
        batch_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Register an AnnData with SED.

        Validates the data (numeric, finite, non-empty; dense, CSR or CSC accepted and
        never rewritten) and records the conditioning covariates.

        Parameters
        ----------
        adata
            Rows × features; values in ``X`` or ``layers[layer]``.
        layer
            Layer holding the data (e.g. raw counts); None uses ``X``.
        labels_key
            ``obs`` column of labels (e.g. cell type) to condition generation on.
        batch_key
            ``obs`` column of batches to condition generation on.
        categorical_covariate_keys
            Further categorical ``obs`` columns to condition generation on.
        **kwargs
            Passed to :meth:`~scvi.data.AnnDataManager.register_fields`.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        check_obs_keys(
            adata,
            {
                "labels_key": labels_key,
                "batch_key": batch_key,
                "categorical_covariate_keys": categorical_covariate_keys,
            },
        )
        fields = [
            SparseLayerField(REGISTRY_KEYS.X_KEY, layer),
            CategoricalObsField(REGISTRY_KEYS.LABELS_KEY, labels_key),
            CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            CategoricalJointObsField(REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys),
        ]
        adata_manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    @classmethod
    def setup_datamodule(
        cls,
        datamodule: LightningDataModule,
        *,
        var_names: Sequence[str] | None = None,
        conditions: Mapping[str, Sequence] | None = None,
    ) -> dict:
        """Set SED up from a LightningDataModule; returns the registry to build the model from.

        As in scvi-tools 1.4 (``SCVI(adata=None, registry=datamodule.registry)``), the
        model is built from a registry instead of an AnnData, then trained with
        ``model.train(datamodule=datamodule)``. SED's registry also needs the data
        statistics (longest row, integer check, features ever non-zero, detection rates):
        they are computed here in **one streaming pass** over the module's training and
        validation minibatches, one minibatch in memory at a time.

        Minibatches must be dicts (after the module's batch-transfer hooks) with the data
        as a ``(rows, n_vars)`` tensor under ``"X"`` and, for conditions, ``(rows, 1)``
        integer codes under ``"labels"``/``"batch"``, as scvi-tools' data modules yield
        (e.g. :class:`scvi.dataloaders.TileDBDataModule` over a TileDB-SOMA experiment).

        Parameters
        ----------
        datamodule
            The data module.
        var_names
            Feature names (default: the module's ``var_names``, else its ``registry``'s
            feature names, else ``"0"``, ``"1"``, ...). Generated AnnData carry them.
        conditions
            ``{"labels" or "batch": categories in code order}`` to condition generation on.
            None (default) takes labels and batch with their categories from an scvi-tools
            data module's ``registry``; ``{}`` sets up an unconditional model.

        Returns
        -------
        The registry: pass it as ``SEDModel(registry=...)``.

        Examples
        --------
        >>> registry = sc_sed.SEDModel.setup_datamodule(datamodule)
        >>> model = sc_sed.SEDModel(registry=registry)
        >>> model.train(datamodule=datamodule)
        >>> synth = model.generate(n_cells=100)
        """
        return datamodule_registry(
            datamodule, cls.__name__, var_names=var_names, conditions=conditions
        )

    @property
    def _data_stats(self) -> dict:
        return combined_stats(self.registry_)

    @property
    def _x_keys(self) -> list[str]:
        return data_keys(self.registry_)

    @staticmethod
    def _resolve_likelihood(choice: str, stats: dict) -> str:
        if choice == "auto":
            choice = _auto_likelihood(stats)
        if stats["has_negative"] and choice != "gaussian":
            msg = (
                f"The data contain negative values (minimum {stats['min_value']:.4g}), which "
                f"value_likelihood={choice!r} cannot model. Register non-negative data (e.g. raw "
                "counts via `layer=`), or pass value_likelihood='gaussian' for signed values."
            )
            raise ValueError(msg)
        if choice in ("ztnb", "ztpoisson") and not stats["is_integer"]:
            msg = (
                f"value_likelihood={choice!r} needs integer counts but the data are not integers; "
                "register raw counts (`layer=`) or use 'lognormal'."
            )
            raise ValueError(msg)
        if choice == "logcount" and not stats["is_integer"]:
            msg = (
                "value_likelihood='logcount' needs integer counts but the data are not "
                "integers; register raw counts (`layer=`) or use 'lognormal'."
            )
            raise ValueError(msg)
        return choice

    @staticmethod
    def _resolve_index_head(choice: str, n_features: int) -> str:
        if choice == "auto":
            return "factorised" if n_features >= FACTORISED_HEAD_MIN_FEATURES else "flat"
        return choice

    @property
    def _layer(self) -> str | None:
        return self.get_setup_arg("layer")

    def _require(self, stage: Literal["autoencoder", "diffusion"], action: str) -> None:
        done = self.autoencoder_trained_ if stage == "autoencoder" else self.diffusion_trained_
        if not done:
            how = (
                "model.train()"
                if stage == "autoencoder"
                else "model.train() (or model.train_diffusion())"
            )
            msg = f"Cannot {action} before the {stage} is trained; call {how} first."
            raise RuntimeError(msg)

    # -- encoding / reconstruction -----------------------------------------------------------
    def _check_data(self, adata: AnnData | MuData) -> None:
        """Validate ``adata``'s registered data by :func:`~sc_sed.data.check_matrix`'s rules.

        Negative values are refused unless the value likelihood is ``"gaussian"``.
        """
        manager = self.get_anndata_manager(adata, required=True)
        keys = self._x_keys
        hint = (
            f"value_likelihood={self.value_likelihood_!r} models non-negative values; pass "
            "data like the training data (e.g. raw counts)"
        )
        for key in keys:
            what = where_data(self._layer) if len(keys) == 1 else f"The registered data {key!r}"
            check_matrix(
                manager.get_from_registry(key), what=what, hint=hint,
                nonnegative=self.value_likelihood_ != "gaussian",
            )  # fmt: skip

    def _token_batches(self, adata: AnnData | None, indices, batch_size: int | None):
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(
            adata=adata, indices=indices, batch_size=batch_size or 64, load_sparse_tensor=True
        )
        device = self.module.device
        for batch in quiet_sparse_loading(loader):
            batch = tokenize_batch(
                batch,
                x_keys=self._x_keys,
                max_nonzero=self.max_nonzero_,
                on_long_rows=self.on_long_rows,
            )
            yield {k: v.to(device) for k, v in batch.items()}

    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Posterior means of the latent of each row.

        Parameters
        ----------
        adata
            AnnData with the training features (default: the training AnnData).
        indices
            Rows to encode (default: all).
        batch_size
            Rows per minibatch.

        Returns
        -------
        ``(n_rows, n_latent)`` array.
        """
        self._require("autoencoder", "compute latents")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        adata = self._validate_anndata(adata)
        rows = check_indices(indices, adata.n_obs)
        self._check_data(adata)
        self.module.eval()
        out = [
            self.module.encode(b[TOKENS_INDEX_KEY], b[TOKENS_VALUE_KEY]).cpu()
            for b in self._token_batches(adata, rows, batch_size)
        ]
        return torch.cat(out).numpy()

    def _decode_to_csr(
        self, z: torch.Tensor, generator, temperature: float, greedy: bool
    ) -> sp.csr_matrix:
        index, value, _ = self.module.decode(
            z, generator=generator, temperature=temperature, greedy=greedy
        )
        return pairs_to_csr(index, value, self.module.n_features)

    @torch.inference_mode()
    def reconstruct(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        *,
        seed: int = 0,
        greedy: bool = False,
        temperature: float = 1.0,
        batch_size: int | None = None,
    ) -> AnnData:
        """Encode rows and decode them again (no diffusion).

        Parameters
        ----------
        adata
            AnnData with the training features (default: the training AnnData).
        indices
            Rows to reconstruct (default: all).
        seed
            Seed of the decoder's sampling (a non-negative integer, as in :meth:`generate`).
        greedy
            Most likely index and point-estimate value at each step instead of sampling.
        temperature
            Index softmax temperature when sampling (finite, > 0).
        batch_size
            Rows per minibatch (a positive integer; default 64).

        Returns
        -------
        AnnData with the reconstructed rows (CSR, exact zeros), the source rows' ``obs``
        and the training ``var_names``.
        """
        self._require("autoencoder", "reconstruct")
        check_seed(seed)
        check_temperature(temperature)
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        if not isinstance(greedy, bool | np.bool_):
            raise TypeError(f"greedy must be True or False, got {greedy!r}.")
        self.module.eval()
        source = self._validate_anndata(adata)
        rows = check_indices(indices, source.n_obs)
        self._check_data(source)
        generator = torch.Generator(device=self.module.device)
        generator.manual_seed(block_seed(seed, 0))
        parts = []
        for b in self._token_batches(source, rows, batch_size):
            z = self.module.encode(b[TOKENS_INDEX_KEY], b[TOKENS_VALUE_KEY])
            parts.append(self._decode_to_csr(z, generator, temperature, greedy))
        uns = self._provenance(
            seed=seed, task="reconstruct", greedy=greedy, temperature=temperature
        )
        return self._wrap(sp.vstack(parts, format="csr"), source.obs.iloc[rows].copy(), uns)

    # -- save / load -------------------------------------------------------------------------
    def _validate_anndata(self, adata: AnnData | None = None, copy_if_view: bool = True):
        if adata is None and self.adata is None:
            msg = (
                "This model has no AnnData (it was set up from a data module or loaded with "
                "adata=False); pass adata= with the training features "
                "(`adata[:, model.training_var_.index]`)."
            )
            raise ValueError(msg)
        if adata is not None:
            check_var_names(adata, self.registry_)
            method = self.registry_.get("setup_method_name")
            if method == DATAMODULE_SETUP and self.get_anndata_manager(adata) is None:
                # scvi-tools would call the registry's set-up method, setup_datamodule;
                # an AnnData is set up with setup_anndata and the data module's registry
                self.setup_anndata(
                    adata, source_registry=self.registry_, **self.registry_[SETUP_ARGS_KEY]
                )
                manager = self._get_most_recent_anndata_manager(adata, required=True)
                self._register_manager_for_instance(manager)
        return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    def save(
        self,
        dir_path: str | os.PathLike,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        save_kwargs: dict | None = None,
        legacy_mudata_format: bool = False,
        datamodule: Any = None,
        **anndata_write_kwargs: Any,
    ) -> None:
        """Save the model to a folder in SED's pickle-free format.

        The folder holds JSON (parameters, registry, fitted attributes, history), a
        safetensors file (weights and buffers) and an ``.h5ad`` with the training
        ``var``/``uns`` (see :mod:`sc_sed.model._io`). It is written to a temporary
        folder next to ``dir_path`` and renamed into place, so an interrupted save never
        leaves a half-written model.

        Parameters
        ----------
        dir_path
            Folder to write.
        prefix
            Prefix of the file names (several models may share a folder).
        overwrite
            Replace an existing folder's saved model (its files with this prefix, including
            an earlier ``adata.h5ad``, are removed; other files stay). Without it an
            existing ``dir_path`` raises.
        save_anndata
            Also write the registered AnnData (``adata.h5ad``, or ``mdata.h5mu``).
        save_kwargs, legacy_mudata_format, datamodule
            scvi-tools options of its pickle format; not supported (must keep defaults).
        **anndata_write_kwargs
            Passed to :meth:`anndata.AnnData.write` with ``save_anndata=True``.

        Notes
        -----
        In distributed training (every DDP rank running the same script, e.g. under
        ``torchrun`` or ``strategy="ddp"``, and checkpoints saved during training) only the
        process of global rank 0 writes; on the other ranks this method does nothing.
        """
        if save_kwargs or legacy_mudata_format or datamodule is not None:
            msg = (
                "save_kwargs, legacy_mudata_format and datamodule belong to scvi-tools' pickle "
                "format, which SEDModel does not write; leave them at their defaults."
            )
            raise ValueError(msg)
        if global_rank() != 0:
            return
        _io.save_model(
            self, dir_path, prefix=prefix, overwrite=overwrite, save_anndata=save_anndata,
            write_kwargs=anndata_write_kwargs,
        )  # fmt: skip

    @classmethod
    def load(
        cls,
        dir_path: str | os.PathLike,
        adata: AnnData | MuData | None = None,
        accelerator: str = "auto",
        device: int | str = "auto",
        prefix: str | None = None,
        backup_url: str | None = None,
        datamodule: Any = None,
        allowed_classes_names_list: list[str] | None = None,
    ) -> SEDModel:
        """Load a model saved by :meth:`save`; never runs code from the files.

        Every file is validated before the model is built: a regular file no larger than
        its kind's limit (``sc_sed.model._io.MAX_FILE_BYTES``, checked before reading),
        well-formed, every field of the JSON document of the right type and range (sizes
        are checked before anything is allocated), feature names and categories the same
        in every file, the tensors exactly those of the described module, finite. Problems
        raise :class:`~sc_sed.model._io.ModelFileError` (a ``ValueError``) naming the file
        and the field. Folders in the earlier pickle format are refused; see
        :meth:`convert_legacy_save`.

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            AnnData (or MuData) laid out as the training data: same features in the same
            order and no unknown categories; it is registered with the saved setup.
            None loads the folder's saved AnnData when there is one, False never does.
        accelerator, device
            Where to put the model (``"auto"``: a GPU when there is one).
        prefix
            Prefix of the file names.
        backup_url, datamodule
            Not supported (must be None).
        allowed_classes_names_list
            Further model class names accepted besides this class's.

        Returns
        -------
        The model.
        """
        if backup_url is not None or datamodule is not None:
            msg = "backup_url and datamodule are not supported; download the folder first."
            raise ValueError(msg)
        torch_device = resolve_device(accelerator, device)
        saved = _io.read_folder(
            dir_path, cls, prefix=prefix, load_adata=adata is None,
            allowed=list(allowed_classes_names_list or []),
        )  # fmt: skip
        adata = saved.adata if adata is None else adata
        if adata is not None and adata is not False:
            registry = saved.doc["registry"]
            try:
                check_var_names(adata, registry)
                setup = getattr(cls, anndata_setup_method(registry))
                setup(adata, source_registry=registry, **registry[SETUP_ARGS_KEY])
            except (ValueError, KeyError, TypeError) as err:
                if adata is not saved.adata:
                    raise  # the caller's AnnData: their error, as it is
                msg = f"{saved.adata_path} does not match {saved.paths['model'].name}: {err}"
                raise _io.ModelFileError(msg) from err
        model = _io.restore_model(cls, saved, adata if adata is not False else None)
        model.to_device(torch_device)
        model.module.eval()
        return model

    @classmethod
    def convert_legacy_save(
        cls,
        dir_path: str | os.PathLike,
        output_dir_path: str | os.PathLike,
        overwrite: bool = False,
        prefix: str | None = None,
        **save_kwargs: Any,
    ) -> None:
        """Convert a folder of the earlier pickle format (``model.pt``) to the current one.

        .. warning::
            UNSAFE: this unpickles ``model.pt``, and unpickling runs whatever code the file
            carries. Only convert folders from a source you trust. The converted folder is
            safe to load and share.

        Parameters
        ----------
        dir_path
            Folder in the earlier format (scvi-tools' ``model.pt``).
        output_dir_path
            Folder to write in the current format.
        overwrite
            Replace an existing ``output_dir_path``.
        prefix
            Prefix of the file names (read and written).
        **save_kwargs
            Passed to :meth:`save`.
        """
        names = _io.file_names(prefix)
        legacy = os.path.join(dir_path, names["legacy"])
        if not os.path.isfile(legacy):
            raise _io.ModelFileError(f"{legacy} is missing; nothing to convert.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = BaseModelClass.load.__func__(
                cls, str(dir_path), adata=False, accelerator="cpu", prefix=prefix
            )
        model.save(output_dir_path, prefix=prefix, overwrite=overwrite, **save_kwargs)
        for key in ("adata", "mdata"):
            src = os.path.join(dir_path, names[key])
            if os.path.isfile(src):
                shutil.copy2(src, os.path.join(output_dir_path, names[key]))
