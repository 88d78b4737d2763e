"""SEDModel: the AnnData-facing model (registry, training, generation, save/load)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import CategoricalJointObsField, CategoricalObsField
from scvi.model.base import BaseModelClass

from sc_sed.data import pairs_to_csr
from sc_sed.module import SEDModule
from sc_sed.train import tokenize_batch

from ._conditions import condition_specs
from ._fields import SparseLayerField
from ._generation import GenerationMixin
from ._mudata import MuDataSetupMixin, combined_stats, data_keys, joint_reference
from ._training import TrainingMixin

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

FACTORISED_HEAD_MIN_FEATURES = 512


def _check_obs_keys(adata: AnnData, keys: Mapping[str, str | Sequence[str] | None]) -> None:
    for arg, value in keys.items():
        for key in [value] if isinstance(value, str) else (value or []):
            if key not in adata.obs:
                msg = (
                    f"{arg}={key!r} is not a column of adata.obs "
                    f"(columns: {list(adata.obs.columns)[:20]})."
                )
                raise KeyError(msg)


def _detection_rate(stats: dict) -> torch.Tensor | None:
    """Per-feature fraction of registered rows with a non-zero (None for old registries)."""
    n_detected = stats.get("n_detected")
    if n_detected is None or not stats["n_obs"]:
        return None
    return torch.as_tensor(np.asarray(n_detected), dtype=torch.float32) / stats["n_obs"]


class SEDModel(MuDataSetupMixin, TrainingMixin, GenerationMixin, BaseModelClass):
    """Sparsity-Exploiting Diffusion for sparse AnnData.

    Rows are encoded from their non-zero (feature, value) pairs by a set encoder,
    modelled by diffusion in the latent space, and decoded autoregressively into
    strictly increasing (feature, value) pairs; every other entry is an exact zero.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (None when loading a saved model).
    registry
        Registry of a saved model (used by :meth:`load`).
    n_latent
        Size of the latent space.
    n_hidden
        Transformer width.
    n_layers
        Transformer layers of the encoder and of the decoder.
    n_heads
        Attention heads.
    n_ff
        Feed-forward width of the Transformers.
    dropout_rate
        Transformer dropout.
    n_memory
        Memory tokens made from the latent for the decoder's cross-attention.
    index_head
        ``"flat"`` (one softmax over all features, O(D) per token), ``"factorised"``
        (block then offset, O(√D) per token) or ``"auto"`` (factorised from
        512 features on, where it is already cheaper than the flat head).
    block_size
        Block size of the factorised head (default ``ceil(sqrt(D))``).
    value_likelihood
        Likelihood of the non-zero values: ``"ztnb"`` (zero-truncated negative
        binomial), ``"ztpoisson"``, ``"lognormal"``, ``"gaussian"``, or ``"auto"``:
        ``"ztnb"`` for integer data, ``"lognormal"`` for other non-negative data.
    max_nonzero
        Longest row the decoder generates (default: the longest registered row).
    on_long_rows
        Rows longer than ``max_nonzero`` raise (``"error"``) or keep their
        ``max_nonzero`` largest values (``"truncate"``).
    mask_unseen_features
        Never generate features that are zero in every registered row.
    kl_weight
        Weight β of the KL term of the autoencoder.
    denoiser_widths
        Widths of the MLP U-Net denoiser.
    cond_dropout
        Probability of dropping each condition in diffusion training (for guidance).
    **module_kwargs
        Further :class:`~sc_sed.module.SEDModule` arguments.

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
        n_latent: int = 64,
        n_hidden: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        n_ff: int = 256,
        dropout_rate: float = 0.1,
        n_memory: int = 4,
        index_head: Literal["auto", "flat", "factorised"] = "auto",
        block_size: int | None = None,
        value_likelihood: Literal["auto", "ztnb", "ztpoisson", "lognormal", "gaussian"] = "auto",
        max_nonzero: int | None = None,
        on_long_rows: Literal["error", "truncate"] = "error",
        mask_unseen_features: bool = True,
        kl_weight: float = 1e-6,
        denoiser_widths: Sequence[int] = (512, 512, 256, 128),
        cond_dropout: float = 0.1,
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
        self.module = self._module_cls(
            n_features=stats["n_vars"],
            max_nonzero=self.max_nonzero_,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            n_heads=n_heads,
            n_ff=n_ff,
            dropout_rate=dropout_rate,
            n_memory=n_memory,
            index_head=self.index_head_,
            block_size=block_size,
            value_likelihood=self.value_likelihood_,
            kl_weight=kl_weight,
            allowed_features=allowed,
            detection_rate=_detection_rate(stats),
            n_cats_per_cond=[c.n_cats for c in self._conditions],
            denoiser_widths=denoiser_widths,
            cond_dropout=cond_dropout,
            **module_kwargs,
        )
        self.autoencoder_trained_ = False
        self.diffusion_trained_ = False
        if adata is not None:
            # kept (and saved) so generated AnnData carry the training feature annotations
            # (pixel coordinates, modalities, item metadata) even without the AnnData
            ref = joint_reference(adata, self.registry_)
            self.training_var_ = ref.var.copy()
            self.training_uns_ = {k: v for k, v in ref.uns.items() if k.startswith("sc_sed_")}
        cond = ", ".join(c.obs_key for c in self._conditions) or "none"
        self._model_summary_string = (
            f"SEDModel: {stats['n_vars']} features, n_latent={n_latent}, n_hidden={n_hidden}, "
            f"n_layers={n_layers}, index_head={self.index_head_!r}, "
            f"value_likelihood={self.value_likelihood_!r}, max_nonzero={self.max_nonzero_}, "
            f"conditions: {cond}."
        )
        self.init_params_ = self._get_init_params(locals())

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
        _check_obs_keys(
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

    @property
    def _data_stats(self) -> dict:
        return combined_stats(self.registry_)

    @property
    def _x_keys(self) -> list[str]:
        return data_keys(self.registry_)

    @staticmethod
    def _resolve_likelihood(choice: str, stats: dict) -> str:
        if choice == "auto":
            choice = "ztnb" if stats["is_integer"] and not stats["has_negative"] else "lognormal"
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
        return choice

    @staticmethod
    def _resolve_index_head(choice: str, n_features: int) -> str:
        if choice == "auto":
            return "factorised" if n_features >= FACTORISED_HEAD_MIN_FEATURES else "flat"
        return choice

    @property
    def _layer(self) -> str | None:
        return self.registry_["setup_args"].get("layer")

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
    def _token_batches(self, adata: AnnData | None, indices, batch_size: int | None):
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(
            adata=adata, indices=indices, batch_size=batch_size or 64, load_sparse_tensor=True
        )
        device = self.module.device
        for batch in loader:
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
        self.module.eval()
        out = [
            self.module.encode(b["tokens_index"], b["tokens_value"]).cpu()
            for b in self._token_batches(adata, indices, batch_size)
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
            Seed of the decoder's sampling.
        greedy
            Most likely index and point-estimate value at each step instead of sampling.
        temperature
            Index softmax temperature when sampling.
        batch_size
            Rows per minibatch.

        Returns
        -------
        AnnData with the reconstructed rows (CSR, exact zeros), the source rows' ``obs``
        and the training ``var_names``.
        """
        self._require("autoencoder", "reconstruct")
        self.module.eval()
        source = self._validate_anndata(adata)
        rows = np.arange(source.n_obs) if indices is None else np.asarray(indices)
        generator = torch.Generator(device=self.module.device).manual_seed(seed)
        parts = []
        for b in self._token_batches(source, rows, batch_size):
            z = self.module.encode(b["tokens_index"], b["tokens_value"])
            parts.append(self._decode_to_csr(z, generator, temperature, greedy))
        uns = self._provenance(
            seed=seed, task="reconstruct", greedy=greedy, temperature=temperature
        )
        return self._wrap(sp.vstack(parts, format="csr"), source.obs.iloc[rows].copy(), uns)
