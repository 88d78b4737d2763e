"""Generation for SEDModel: conditions, guidance, batched sampling, output AnnData."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from sc_sed._validation import progress_flag
from sc_sed.data import pairs_to_csr

from ._conditions import draw_conditions
from ._like import (
    DEFAULT_STRENGTH,
    check_like,
    check_strength,
    encoding_copy,
    template_requests,
    template_rows,
)
from ._mudata import to_mudata
from ._output import condition_obs, synthetic_anndata
from ._registry import setup_arg
from ._shards import block_seed, check_shard, shard_rows
from ._stream import check_out_path, write_streamed

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData

logger = logging.getLogger(__name__)

#: Refuse an in-memory result estimated above this share of the available memory.
MEMORY_SHARE = 0.5
#: Bytes per stored non-zero of a generated CSR (float32 value + int32/int64 index, during
#: the final stack held twice) and per row (indptr, obs).
BYTES_PER_NONZERO = 24
BYTES_PER_ROW = 64
#: Rows generated when neither ``n_cells`` nor a list/dict request nor ``like`` gives a number.
DEFAULT_N_CELLS = 1000


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _finite(value: Any) -> bool:
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def check_temperature(temperature: Any) -> None:
    """Raise a ValueError unless ``temperature`` is a finite number > 0."""
    if not (_finite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}.")


def check_seed(seed: Any) -> None:
    """Raise a ValueError unless ``seed`` is a non-negative integer (of any size)."""
    if not (_is_int(seed) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")


def check_positive_int(value: Any, name: str) -> None:
    """Raise a ValueError unless ``value`` is an integer >= 1 (not a bool)."""
    if not (_is_int(value) and value >= 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_generation_args(
    n_cells: Any, *, temperature: Any, seed: Any, batch_size: Any, n_steps: Any, sampler: Any
) -> None:
    """Validate :meth:`GenerationMixin.generate`'s scalar arguments before any work."""
    if n_cells is not None and not (_is_int(n_cells) and n_cells >= 1):
        msg = f"n_cells must be a positive integer (or None with `labels` counts), got {n_cells!r}."
        raise (ValueError if _is_int(n_cells) else TypeError)(msg)
    check_temperature(temperature)
    check_seed(seed)
    check_positive_int(batch_size, "batch_size")
    check_positive_int(n_steps, "n_steps")
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}.")


def default_n_cells(n_cells: int | None, requests: Mapping[str, Any]) -> int | None:
    """``n_cells``, or :data:`DEFAULT_N_CELLS` when None and no request is a list or dict."""
    if n_cells is not None:
        return n_cells
    counted = any(
        isinstance(r, Mapping) or not (isinstance(r, str) or np.isscalar(r))
        for r in requests.values()
    )
    return None if counted else DEFAULT_N_CELLS


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _stack(batches: Iterator[sp.csr_matrix], n_features: int) -> sp.csr_matrix:
    """Stack generated batches; no batches (an empty shard) give a ``(0, n_features)`` CSR."""
    parts = list(batches)
    if not parts:
        return sp.csr_matrix((0, n_features), dtype=np.float32)
    return sp.vstack(parts, format="csr")


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
            weights = [guidance_scale.get(k, 1.0) for k in keys]
        elif isinstance(guidance_scale, str | bytes) or not isinstance(
            guidance_scale, Sequence | np.ndarray | int | float | np.number
        ):
            msg = f"guidance_scale must be a number, a list or a dict of numbers, got {guidance_scale!r}."
            raise TypeError(msg)
        elif np.isscalar(guidance_scale):
            weights = [guidance_scale] * len(keys)
        else:
            weights = list(guidance_scale)
            if len(weights) != len(keys):
                msg = (
                    f"guidance_scale has {len(weights)} weights for {len(keys)} covariates {keys}."
                )
                raise ValueError(msg)
        bad = [w for w in weights if not (_finite(w) and w >= 0)]
        if bad:
            msg = (
                f"guidance_scale weights must be finite numbers >= 0 (0 unconditional, 1 "
                f"conditional, > 1 sharper), got {bad}."
            )
            raise ValueError(msg)
        if not keys and (not np.isscalar(guidance_scale) or guidance_scale != 1.0):
            logger.warning("guidance_scale is ignored: the model has no conditions.")
        return [float(w) for w in weights]

    def _check_memory(self, n_rows: int) -> None:
        stats = self._data_stats
        copies = 2 if self._layer is not None else 1
        per_row = BYTES_PER_ROW + copies * BYTES_PER_NONZERO * max(
            1.0, stats.get("mean_nonzero", stats["max_nonzero"])
        )
        need, have = n_rows * per_row, _available_memory()
        if need > MEMORY_SHARE * have:
            msg = (
                f"n_cells={n_rows} would need about {need / 2**30:.1f} GiB in memory "
                f"({have / 2**30:.1f} GiB available). Stream the rows to disk instead: "
                "generate(..., out='cells.h5ad') (or .zarr)."
            )
            raise ValueError(msg)

    def _provenance(self, **extra: Any) -> dict:
        from sc_sed import __version__

        return {"version": __version__, "model": type(self).__name__, **extra}

    def _train_condition_codes(self) -> np.ndarray:
        stored = getattr(self, "train_condition_codes_", None)
        if stored is not None:
            return stored
        msg = "The model's training conditions are unknown; train the diffusion first."
        raise RuntimeError(msg)

    def _encode_templates(self, like: AnnData, batch_size: int) -> torch.Tensor:
        """Encode the rows of ``like`` (encoder means) from a copy, leaving ``like`` untouched."""
        from ._sed import check_var_names  # lazy: _sed imports this module

        check_var_names(like, self.registry_)
        copy = encoding_copy(like, self._layer, self._conditions)
        try:
            z = self.get_latent_representation(copy, batch_size=batch_size)
        finally:  # scvi-tools' deregister_manager misses managers transferred on the fly
            manager = self.get_anndata_manager(copy)
            if manager is not None:
                self._per_instance_manager_store[self.id].pop(manager.adata_uuid, None)
        return torch.as_tensor(z, dtype=torch.float32)

    @torch.inference_mode()
    def generate(
        self,
        n_cells: int | None = None,
        labels: Any = None,
        *,
        like: AnnData | None = None,
        strength: float | None = None,
        covariates: Mapping[str, Any] | None = None,
        guidance_scale: float | Mapping[str, float] | Sequence[float] = 1.0,
        sampler: Literal["ddim", "ddpm"] = "ddim",
        n_steps: int = 50,
        temperature: float = 1.0,
        seed: int = 0,
        batch_size: int = 256,
        enable_progress_bar: bool = True,
        progress_bar: bool | None = None,
        out: str | os.PathLike | None = None,
        overwrite: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> AnnData | MuData | Path:
        """Generate new rows with exact zeros.

        Parameters
        ----------
        n_cells
            Number of rows (a positive integer). None: the number a list or dict of
            ``labels``/``covariates`` gives, one row per template row with ``like``, else
            1000. With ``like``, a given ``n_cells`` cycles through the template rows in
            order (row ``k`` edits template ``k mod len(like)``).
        labels
            Requested values of ``labels_key``: one category (for every row), a list (one per
            row) or a dict ``{category: n}`` (non-negative integer counts). None draws labels
            in training proportions (with ``like``: takes each template's label).
        like
            AnnData of template rows with the training features (same ``var_names`` in the
            same order; data in the registered layer): generate new rows resembling them,
            without retraining (SDEdit). Each template is encoded (encoder mean), noised to
            time ``strength`` of the diffusion's forward process and denoised back to 0 in
            ``ceil(strength * n_steps)`` steps with the chosen ``sampler``. Each row's
            conditions are the requested ones (``labels``, ``covariates``), else its
            template's values in ``like.obs`` under the registered keys (a category the model
            was not trained on raises), else drawn as without ``like``. ``obs["template"]``
            holds each row's template name (``like.obs_names``). ``like`` is not changed.
        strength
            With ``like``: how far rows may move from their templates, in ``(0, 1]``
            (the diffusion time they are noised to). Small values keep each template's
            cell type and most of its identity; 1 forgets the template (plain
            conditional generation). None uses 0.5, chosen by measuring label agreement,
            distance to the template and to the training cells on PBMC at several
            strengths (``benchmarks/README.md``, "Cells like given cells").
        covariates
            Requested values of other registered covariates, ``{obs_key: request}`` with
            requests as for ``labels``. Unrequested covariates are drawn from training rows
            that match the requested ones.
        guidance_scale
            Classifier-free guidance weight, finite and >= 0: one number for every covariate,
            a list (one per covariate, in registration order: labels, batch, categorical
            covariates) or a dict ``{obs_key: weight}``. 1 is plain conditional sampling, 0
            unconditional, above 1 sharpens the conditions. Negative weights (sampling away
            from a condition) are refused. A model without conditions ignores it (with a
            logged warning when it is not 1).
        sampler
            ``"ddim"`` (deterministic) or ``"ddpm"`` (ancestral).
        n_steps
            Diffusion sampling steps.
        temperature
            Softmax temperature of the decoder's index head (finite, > 0).
        seed
            Seed of every random draw (a non-negative integer). The conditions of all rows
            are drawn from it, and each block of ``batch_size`` rows is sampled with its own
            generator seeded from ``(seed, block number)``: the same ``seed`` and
            ``batch_size`` give the same rows on the same device, in memory, streamed to
            ``out`` or split into shards.
        batch_size
            Rows generated together (memory grows with it, not with ``n_cells``); also the
            seed block, so changing it changes the rows.
        enable_progress_bar
            Show a progress bar.
        progress_bar
            Deprecated spelling of ``enable_progress_bar``.
        out
            Stream the rows batch by batch to this ``.h5ad`` or ``.zarr`` file instead of
            returning them, so memory does not grow with ``n_cells``. The file holds the
            AnnData that would have been returned. Its folder must exist.
        overwrite
            Replace an existing ``out``: an ``.h5ad`` file, or a ``.zarr`` store that sc_sed
            wrote. Any other folder at ``out`` is refused and left as it is.
        shard
            ``(i, n)``: generate only shard ``i`` of ``n`` (a contiguous run of whole
            ``batch_size`` blocks) of the ``n_cells`` rows, e.g. one per process or GPU.
            Rows keep their global names ``synthetic_{k}``; join the shard files with
            :func:`sc_sed.data.join_shards` to get the file one process would have written.
            A shard may hold no rows (fewer blocks than shards, e.g. ``n_cells`` below
            ``n * batch_size``): it is a valid 0-row AnnData (file) that joins like any other.

        Returns
        -------
        AnnData with CSR ``X`` (also in ``layers[layer]`` when a layer was registered), the
        training ``var_names``, the conditions in ``obs`` (training categories),
        ``obs["synthetic"] = True`` and provenance in ``uns["sc_sed"]``; a MuData for a
        MuData model. With ``out``: the path of the written file. With ``like``:
        ``obs["template"]``, and ``uns["sc_sed"]`` records ``mode="like"``, ``strength`` and
        ``n_templates``.
        """
        progress_bar = progress_flag(enable_progress_bar, progress_bar)
        self._require("diffusion", "generate")
        check_generation_args(
            n_cells, temperature=temperature, seed=seed, batch_size=batch_size,
            n_steps=n_steps, sampler=sampler,
        )  # fmt: skip
        if like is None and strength is not None:
            raise ValueError("strength applies to generate(like=...); pass template rows as like.")
        if like is not None:
            check_like(like)
            strength = check_strength(DEFAULT_STRENGTH if strength is None else strength)
            if setup_arg(self.registry_, "modalities"):
                raise ValueError("like= takes AnnData templates; a MuData model cannot use it.")
        shard = check_shard(shard)
        path = None if out is None else check_out_path(out, overwrite)
        if path is not None and setup_arg(self.registry_, "modalities"):
            raise ValueError("out= streams AnnData; a MuData model returns its rows in memory.")
        self._check_latent_stats()
        requests = dict(covariates or {})
        if labels is not None:
            label_key = setup_arg(self.registry_, "labels_key")
            if label_key is None:
                raise ValueError(
                    "`labels` was given but the model has no labels_key; register one in setup_anndata."
                )
            requests[label_key] = labels
        weights = self._guidance_weights(guidance_scale)
        template, latents = None, None
        if like is not None:
            latents = self._encode_templates(like, batch_size)
            template = template_rows(like.n_obs, n_cells)
            requests = template_requests(like, self._conditions, template, requests)
            n_cells = len(template)
        n_cells = default_n_cells(n_cells, requests)
        if path is None and n_cells is not None:
            self._check_memory(n_cells)
        codes = draw_conditions(
            self._conditions,
            requests,
            n_cells,
            self._train_condition_codes(),
            np.random.default_rng(seed),
        )
        codes_total = codes.shape[0]
        rows = shard_rows(codes_total, batch_size, shard)
        if path is None:
            self._check_memory(len(rows))
        codes = codes[rows.start : rows.stop]
        obs = condition_obs(self._conditions, codes, pd.Index([f"synthetic_{i}" for i in rows]))
        if template is not None:
            template = template[rows.start : rows.stop]
            obs["template"] = np.asarray(like.obs_names.astype(str), dtype=object)[template]
        uns = self._provenance(
            seed=seed, sampler=sampler, n_steps=n_steps, temperature=temperature,
            guidance_scale=dict(zip([c.obs_key for c in self._conditions], weights, strict=True)),
            batch_size=batch_size,
            **({} if shard is None else {"shard": [*shard, len(rows), codes_total]}),
            **({} if like is None else {
                "mode": "like", "strength": strength, "n_templates": like.n_obs}),
        )  # fmt: skip
        batches = self._generate_batches(
            codes, weights, sampler, n_steps, temperature, seed, batch_size, progress_bar,
            first_block=rows.start // batch_size,
            templates=None if like is None else (latents, template, strength),
        )  # fmt: skip
        if path is None:
            return self._wrap(_stack(batches, self.module.n_features), obs, uns)
        skeleton = self._wrap(None, obs, uns)
        write_streamed(path, skeleton, batches, self._layer, overwrite=overwrite)
        return path

    def _check_latent_stats(self) -> None:
        std = self.module.diffusion.latent_std
        if not bool(torch.isfinite(std).all()):
            msg = (
                "The diffusion's latent statistics are undefined (NaN): it was trained on "
                "fewer than 2 rows. Retrain with more training rows."
            )
            raise RuntimeError(msg)

    @torch.inference_mode()
    def _generate_batches(
        self, codes, weights, sampler, n_steps, temperature, seed, batch_size, progress_bar,
        first_block: int = 0, templates: tuple[torch.Tensor, np.ndarray, float] | None = None,
    ) -> Iterator[sp.csr_matrix]:  # fmt: skip
        """Sample and decode ``codes`` batch by batch, batch ``b`` seeded from ``(seed, b)``.

        ``codes`` starts at seed block ``first_block`` of the run (a shard's first block).
        ``templates``: ``(latents, template of each row of codes, strength)`` to edit the
        template latents (SDEdit) instead of sampling from noise.
        """
        self.module.eval()
        device = self.module.device
        starts = range(0, codes.shape[0], batch_size)
        for number, start in enumerate(
            tqdm(starts, desc="Generating", disable=not progress_bar, unit="batch")
        ):
            generator = torch.Generator(device=device)
            generator.manual_seed(block_seed(seed, first_block + number))
            cond = torch.as_tensor(codes[start : start + batch_size], device=device)
            edit = {}
            if templates is not None:
                latents, template, strength = templates
                rows = torch.as_tensor(template[start : start + batch_size])
                edit = {"start": latents[rows].to(device), "strength": strength}
            index, value, _ = self.module.sample(
                cond, sampler=sampler, n_steps=n_steps, guidance=weights, generator=generator,
                temperature=temperature, **edit,
            )  # fmt: skip
            yield pairs_to_csr(index, value, self.module.n_features)

    def _wrap(self, x: sp.csr_matrix | None, obs: pd.DataFrame, uns: dict) -> AnnData | MuData:
        """Wrap generated rows as AnnData (MuData for a MuData model) with training annotations.

        ``x=None`` gives the skeleton of a streamed result (no ``X``, no layers).
        """
        out = synthetic_anndata(x, self.training_var_, obs, layer=self._layer, uns=uns)
        for key, value in self.training_uns_.items():
            out.uns[key] = value
        if x is None:
            return out
        return to_mudata(out) if setup_arg(self.registry_, "modalities") else out
