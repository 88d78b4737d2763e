"""Generation for SEDModel: conditions, guidance, batched sampling, output AnnData."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from sc_sed.data import pairs_to_csr

from ._conditions import draw_conditions
from ._mudata import to_mudata
from ._output import condition_obs, synthetic_anndata

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData


class GenerationMixin:
    """Generation of new rows for :class:`~sc_sed.SEDModel`."""

    # -- generation ------------------------------------------------------------------------------
    def _guidance_weights(
        self, guidance_scale: float | Mapping[str, float] | Sequence[float]
    ) -> list[float]:
        keys = [c.obs_key for c in self._conditions]
        if isinstance(guidance_scale, Mapping):
            unknown = [k for k in guidance_scale if k not in keys]
            if unknown:
                msg = f"guidance_scale names {unknown}, which the model is not conditioned on (registered: {keys})."
                raise ValueError(msg)
            return [float(guidance_scale.get(k, 1.0)) for k in keys]
        if np.isscalar(guidance_scale):
            return [float(guidance_scale)] * len(keys)
        weights = [float(w) for w in guidance_scale]
        if len(weights) != len(keys):
            msg = f"guidance_scale has {len(weights)} weights for {len(keys)} covariates {keys}."
            raise ValueError(msg)
        return weights

    def _provenance(self, **extra: Any) -> dict:
        from sc_sed import __version__

        return {"version": __version__, "model": type(self).__name__, **extra}

    def _train_condition_codes(self) -> np.ndarray:
        stored = getattr(self, "train_condition_codes_", None)
        if stored is not None:
            return stored
        msg = "The model's training conditions are unknown; train the diffusion first."
        raise RuntimeError(msg)

    @torch.inference_mode()
    def generate(
        self,
        n_cells: int | None = 1000,
        labels: Any = None,
        *,
        covariates: Mapping[str, Any] | None = None,
        guidance_scale: float | Mapping[str, float] | Sequence[float] = 1.0,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        n_steps: int = 50,
        temperature: float = 1.0,
        seed: int = 0,
        batch_size: int = 256,
        progress_bar: bool = True,
    ) -> AnnData:
        """Generate new rows with exact zeros.

        Parameters
        ----------
        n_cells
            Number of rows; may be None when ``labels`` is a list or a dict of counts.
        labels
            Requested values of ``labels_key``: one category (for every row), a list (one per
            row) or a dict ``{category: n}``. None draws labels in training proportions.
        covariates
            Requested values of other registered covariates, ``{obs_key: request}`` with
            requests as for ``labels``. Unrequested covariates are drawn from training rows
            that match the requested ones.
        guidance_scale
            Classifier-free guidance weight: one number for every covariate, a list (one per
            covariate, in registration order: labels, batch, categorical covariates) or a
            dict ``{obs_key: weight}``. 1 is plain conditional sampling, 0 unconditional,
            above 1 sharpens the conditions.
        sampler
            ``"ddim"`` (deterministic) or ``"ddpm"`` (ancestral).
        n_steps
            Diffusion sampling steps.
        temperature
            Softmax temperature of the decoder's index head.
        seed
            Seed of every random draw; the same seed gives the same AnnData on the same device.
        batch_size
            Rows generated together (memory grows with it, not with ``n_cells``).
        progress_bar
            Show a progress bar.

        Returns
        -------
        AnnData with CSR ``X`` (also in ``layers[layer]`` when a layer was registered), the
        training ``var_names``, the conditions in ``obs`` (training categories),
        ``obs["synthetic"] = True`` and provenance in ``uns["sc_sed"]``.
        """
        self._require("diffusion", "generate")
        if isinstance(n_cells, int | np.integer) and n_cells < 1:
            raise ValueError(f"n_cells must be a positive integer, got {n_cells}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        requests = dict(covariates or {})
        if labels is not None:
            label_key = self.registry_["setup_args"].get("labels_key")
            if label_key is None:
                raise ValueError(
                    "`labels` was given but the model has no labels_key; register one in setup_anndata."
                )
            requests[label_key] = labels
        weights = self._guidance_weights(guidance_scale)
        codes = draw_conditions(
            self._conditions,
            requests,
            n_cells,
            self._train_condition_codes(),
            np.random.default_rng(seed),
        )
        self.module.eval()
        device = self.module.device
        generator = torch.Generator(device=device).manual_seed(seed)
        parts = []
        starts = range(0, codes.shape[0], batch_size)
        for start in tqdm(starts, desc="Generating", disable=not progress_bar, unit="batch"):
            cond = torch.as_tensor(codes[start : start + batch_size], device=device)
            index, value, _ = self.module.sample(
                cond, sampler=sampler, n_steps=n_steps, guidance=weights, generator=generator,
                temperature=temperature,
            )  # fmt: skip
            parts.append(pairs_to_csr(index, value, self.module.n_features))
        obs = condition_obs(
            self._conditions, codes, pd.Index([f"synthetic_{i}" for i in range(codes.shape[0])])
        )
        uns = self._provenance(
            seed=seed, sampler=sampler, n_steps=n_steps, temperature=temperature,
            guidance_scale=dict(zip([c.obs_key for c in self._conditions], weights, strict=True)),
        )  # fmt: skip
        return self._wrap(sp.vstack(parts, format="csr"), obs, uns)

    def _wrap(self, x: sp.csr_matrix, obs: pd.DataFrame, uns: dict) -> AnnData | MuData:
        """Wrap generated rows as AnnData (MuData for a MuData model) with training annotations."""
        out = synthetic_anndata(x, self.training_var_, obs, layer=self._layer, uns=uns)
        for key, value in self.training_uns_.items():
            out.uns[key] = value
        return to_mudata(out) if self.registry_["setup_args"].get("modalities") else out
