"""DenseDDPM: the dense-diffusion baseline (raw and thresholded) on all D features."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import lightning.pytorch as pl
import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from sc_sed._validation import progress_flag
from sc_sed.train import DiffusionTrainingPlan

from ._common import BaselineModel
from ._dense_data import StandardisedRows, standardised_loader
from ._dense_module import DenseDiffusionModule
from ._transform import (
    ValueQuantile,
    apply_threshold,
    feature_mean_std,
    log_normalise,
    to_counts,
)

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)


class DenseDDPM(BaselineModel):
    """Dense diffusion on all features, as SED's latent diffusion but on the whole row.

    Values are normalised like scanpy's ``normalize_total(target_sum=1e4)`` + ``log1p``
    and standardised per feature with the training mean/std; a
    :class:`DenseDiffusionModule` (SED's schedule, x₀-prediction, self-conditioning, EMA,
    samplers and MLP U-Net, with ``n_latent = D``) is trained on them, optionally
    conditioned on one label column with classifier-free guidance.

    Generation back-transforms the samples: un-standardise, ``expm1``, multiply by a library
    size drawn from the training rows (of the same label for a conditional model) divided by
    ``1e4``, and clip negatives to exact zeros. The *raw* output keeps every positive value,
    so it writes many small spurious non-zeros; ``threshold=`` gives the *thresholded*
    variant from the same samples (see :meth:`generate`).

    Parameters
    ----------
    adata
        Training rows × features (not modified). Non-negative values.
    layer
        Layer holding the data (e.g. raw counts); None uses ``X``.
    labels_key
        Optional categorical ``obs`` column to condition on.
    widths
        Widths of the MLP U-Net.
    n_embed
        Noise-level/condition embedding width.
    dropout_rate
        Dropout in the denoiser.
    cond_dropout
        Probability of dropping the label in training (classifier-free guidance).
    self_cond_prob
        Probability of self-conditioning in training.
    target_sum
        Row total after normalisation.

    Examples
    --------
    >>> model = DenseDDPM(adata, layer="counts", labels_key="cell_type")
    >>> model.train(max_epochs=200)
    >>> raw = model.generate(500, seed=0)
    >>> thresholded = model.generate(500, seed=0, threshold="auto")
    """

    method = "dense_ddpm"

    def __init__(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        labels_key: str | None = None,
        widths: Sequence[int] = (512, 512, 256, 128),
        n_embed: int = 128,
        dropout_rate: float = 0.0,
        cond_dropout: float = 0.1,
        self_cond_prob: float = 0.5,
        target_sum: float = 1e4,
    ):
        super().__init__(adata, layer=layer, labels_key=labels_key)
        self.target_sum = float(target_sum)
        self._x_norm = log_normalise(self._x, self.library_, target_sum=self.target_sum)
        del self._x  # only the normalised matrix is needed for training
        self.module = DenseDiffusionModule(
            self.n_features,
            n_cats_per_cond=[c.n_cats for c in self.conditions_],
            widths=widths,
            n_embed=n_embed,
            dropout_rate=dropout_rate,
            cond_dropout=cond_dropout,
            self_cond_prob=self_cond_prob,
        )
        self.module.set_feature_stats(*feature_mean_std(self._x_norm))
        self.thresholds_: dict[tuple, float] = {}

    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int = 128,
        lr: float = 1e-3,
        ema_decay: float = 0.999,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        seed: int = 0,
        enable_progress_bar: bool = True,
        progress_bar: bool | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train the denoiser with :class:`~sc_sed.train.DiffusionTrainingPlan` (as SED's diffusion).

        Parameters
        ----------
        max_epochs
            Epochs (default: about 3,000 optimiser steps, at most 1,000 epochs).
        batch_size
            Rows per minibatch.
        lr
            Learning rate (AdamW, cosine decay to 10%).
        ema_decay
            Decay of the EMA of the weights used for sampling.
        accelerator, devices
            Passed to Lightning (``"auto"`` picks a GPU when there is one).
        seed
            Seeds torch's global generators (noise levels and noise of the loss) and the
            minibatch order.
        enable_progress_bar
            Show Lightning's progress bar.
        progress_bar
            Deprecated spelling of ``enable_progress_bar``.
        **trainer_kwargs
            Passed to :class:`lightning.pytorch.Trainer` (e.g. ``max_steps=``).
        """
        progress_bar = progress_flag(enable_progress_bar, progress_bar)
        if int(batch_size) < 1:
            msg = f"batch_size must be a positive integer, got {batch_size}."
            raise ValueError(msg)
        n = self._x_norm.shape[0]
        if max_epochs is None:
            max_epochs = int(min(1000, math.ceil(3000 / max(1, n // batch_size))))
        torch.manual_seed(seed)
        data = StandardisedRows(
            self._x_norm,
            self.module.latent_mean.cpu().numpy(),
            self.module.latent_std.cpu().numpy(),
            self.train_codes_,
        )
        loader = standardised_loader(data, batch_size=int(batch_size), seed=seed)
        plan = DiffusionTrainingPlan(self.module, lr=lr, ema_decay=ema_decay)
        defaults = {
            "gradient_clip_val": 1.0,
            "logger": False,
            "enable_checkpointing": False,
            "enable_model_summary": progress_bar,
        }
        trainer = pl.Trainer(
            max_epochs=max_epochs, accelerator=accelerator, devices=devices,
            enable_progress_bar=progress_bar,
            **{**defaults, **trainer_kwargs},
        )  # fmt: skip
        trainer.fit(plan, train_dataloaders=loader)
        self.module.eval()
        self.thresholds_.clear()
        self.is_trained_ = True

    @torch.inference_mode()
    def _sample_counts(
        self, codes, library, *, guidance, sampler, n_steps, generator
    ) -> torch.Tensor:
        """``(n, D)`` raw generated values in count space for one minibatch."""
        device = self.module.device
        cond = torch.as_tensor(codes, device=device)
        y = self.module.sample(
            cond, sampler=sampler, n_steps=n_steps, guidance=guidance, generator=generator
        )
        lib = torch.as_tensor(library, dtype=y.dtype, device=device)
        return to_counts(y, lib, target_sum=self.target_sum)

    def _batches(
        self, n_cells, labels, *, guidance_scale, sampler, n_steps, seed, batch_size, progress_bar
    ):
        """Yield ``(raw count-space values, codes)`` per minibatch, all seeded by ``seed``."""
        if int(batch_size) < 1:
            msg = f"batch_size must be a positive integer, got {batch_size}."
            raise ValueError(msg)
        codes, library = self._draw(n_cells, labels, seed)
        guidance = [float(guidance_scale)] * len(self.conditions_)
        generator = torch.Generator(device=self.module.device).manual_seed(seed)
        starts = range(0, codes.shape[0], int(batch_size))
        for start in tqdm(starts, desc="Generating", disable=not progress_bar, unit="batch"):
            part = slice(start, start + int(batch_size))
            yield (
                self._sample_counts(
                    codes[part],
                    library[part],
                    guidance=guidance,
                    sampler=sampler,
                    n_steps=n_steps,
                    generator=generator,
                ),
                codes[part],
            )

    def fit_threshold(
        self,
        *,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        n_steps: int = 50,
        guidance_scale: float = 1.0,
        n_cells: int | None = None,
        seed: int = 0,
        batch_size: int = 256,
    ) -> float:
        """Threshold that gives generated rows the training data's fraction of zeros.

        Generates ``n_cells`` raw rows (default: as many as training rows, at most 2,000) with labels in
        training proportions and the given sampler settings, and returns the smallest ``τ``
        such that the fraction of generated entries (all ``n_cells × D`` of them, exact zeros
        included) below ``τ`` is at least the fraction of zero entries in the training
        matrix (resolved to a 0.23% relative bin, see :class:`ValueQuantile`; 0 if the raw
        output already has that many zeros). Cached per sampler setting.

        Returns
        -------
        The threshold in count space.
        """
        self._require_trained("fit a threshold")
        key = (sampler, int(n_steps), float(guidance_scale), n_cells, int(seed))
        if key not in self.thresholds_:
            quantile = ValueQuantile()
            for x, _ in self._batches(
                n_cells or min(2000, self._x_norm.shape[0]), None, guidance_scale=guidance_scale, sampler=sampler,
                n_steps=n_steps, seed=seed, batch_size=batch_size, progress_bar=False,
            ):  # fmt: skip
                quantile.update(x)
            self.thresholds_[key] = quantile.threshold_for_zero_fraction(self.zero_fraction_)
            logger.info(
                "Auto threshold %.4g for training zero fraction %.4f.",
                self.thresholds_[key],
                self.zero_fraction_,
            )
        return self.thresholds_[key]

    def _resolve_threshold(self, threshold, **settings) -> float | None:
        if threshold is None:
            return None
        if isinstance(threshold, str):
            if threshold != "auto":
                msg = f"threshold must be a number, 'auto' or None, got {threshold!r}."
                raise ValueError(msg)
            return self.fit_threshold(**settings)
        if not np.isfinite(threshold) or threshold < 0:
            msg = f"threshold must be a finite non-negative number, got {threshold}."
            raise ValueError(msg)
        return float(threshold)

    def generate(
        self,
        n_cells: int | None = 1000,
        labels: Any = None,
        *,
        guidance_scale: float = 1.0,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        n_steps: int = 50,
        threshold: float | Literal["auto"] | None = None,
        seed: int = 0,
        batch_size: int = 256,
        enable_progress_bar: bool = True,
        progress_bar: bool | None = None,
    ) -> AnnData:
        """Generate rows; raw (every positive value kept) or thresholded.

        Parameters
        ----------
        n_cells
            Number of rows; may be None when ``labels`` is a list or a dict of counts.
        labels
            One category, a list (one per row) or a dict ``{category: n}`` of
            ``labels_key``; None draws labels in training proportions.
        guidance_scale
            Classifier-free guidance weight (1: plain conditional, 0: unconditional).
        sampler
            ``"ddim"`` (deterministic) or ``"ddpm"`` (ancestral).
        n_steps
            Diffusion sampling steps.
        threshold
            None: the raw dense output. A number ``τ`` (count space): values below ``τ``
            become exact zeros and, for integer training data, kept values are rounded to
            integers ≥ 1. ``"auto"``: ``τ`` from :meth:`fit_threshold` with the same sampler,
            ``n_steps`` and guidance (and its default calibration seed 0). The same ``seed``
            gives the same underlying samples with and without a threshold.
        seed
            Seed of every random draw (labels, library sizes, diffusion noise).
        batch_size
            Rows generated together; memory is ``(batch_size, D)``.
        enable_progress_bar
            Show a progress bar.
        progress_bar
            Deprecated spelling of ``enable_progress_bar``.

        Returns
        -------
        AnnData like :meth:`sc_sed.SEDModel.generate` output (CSR float32 ``X``, also in
        ``layers[layer]``, training ``var_names``, ``obs[labels_key]``,
        ``obs["synthetic"]``, provenance in ``uns["sc_sed"]``).
        """
        progress_bar = progress_flag(enable_progress_bar, progress_bar)
        self._require_trained("generate")
        settings = {"sampler": sampler, "n_steps": n_steps, "guidance_scale": guidance_scale}
        tau = self._resolve_threshold(threshold, **settings, batch_size=batch_size)
        parts, all_codes = [], []
        for x, codes in self._batches(
            n_cells, labels, seed=seed, batch_size=batch_size, progress_bar=progress_bar, **settings
        ):
            if tau is not None:
                x = apply_threshold(x, tau, integer=self.is_integer_)
            parts.append(sp.csr_matrix(x.cpu().numpy()))
            all_codes.append(codes)
        provenance = {"method": self.method, "seed": seed, "sampler": sampler, "n_steps": n_steps}
        provenance["guidance_scale"] = {c.obs_key: float(guidance_scale) for c in self.conditions_}
        if tau is not None:
            rule = "auto" if isinstance(threshold, str) else "fixed"
            provenance.update(
                method=f"{self.method}_thresholded", threshold=tau, threshold_rule=rule
            )
        return self._output(sp.vstack(parts, format="csr"), np.concatenate(all_codes), **provenance)
