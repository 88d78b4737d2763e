"""Templates for ``generate(like=...)``: validation, encoding copies, template conditions.

SDEdit-style generation starts the latent diffusion from the encoded template rows
instead of pure noise; this module holds the AnnData-side bookkeeping (no sampling).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._conditions import ConditionSpec

if TYPE_CHECKING:
    from anndata import AnnData

#: Default ``strength`` of ``generate(like=...)``, chosen by ``benchmarks/like_strength.py``.
DEFAULT_STRENGTH = 0.5


def check_strength(strength: Any) -> float:
    """Validate ``strength``: a real number in ``(0, 1]``.

    Parameters
    ----------
    strength
        The value given to ``generate``.

    Returns
    -------
    The strength as a float.
    """
    if isinstance(strength, bool | np.bool_) or not isinstance(strength, int | float | np.number):
        msg = (
            f"strength must be a number in (0, 1] (how far the templates may move), "
            f"got {type(strength).__name__} {strength!r}."
        )
        raise TypeError(msg)
    if not (math.isfinite(strength) and 0 < strength <= 1):
        msg = (
            f"strength must be in (0, 1], got {strength!r}: small values keep the cells close "
            "to their templates, 1 forgets them."
        )
        raise ValueError(msg)
    return float(strength)


def check_like(like: Any) -> None:
    """Raise unless ``like`` is an AnnData with at least one row."""
    from anndata import AnnData

    if not isinstance(like, AnnData):
        msg = (
            f"like must be an AnnData of template rows with the training features, got "
            f"{type(like).__name__}; wrap an array as anndata.AnnData(X, var=...)."
        )
        raise TypeError(msg)
    if like.n_obs == 0:
        msg = "like has 0 rows; pass at least one template row."
        raise ValueError(msg)


def encoding_copy(like: AnnData, layer: str | None, specs: Sequence[ConditionSpec]) -> AnnData:
    """Build a new AnnData sharing ``like``'s data matrix, to encode it without touching it.

    Registering an AnnData with the model writes into its ``obs`` and ``uns``, so the
    templates are encoded from this copy. Condition columns hold placeholder categories
    (the encoder does not read conditions).

    Parameters
    ----------
    like
        Template rows with the training features.
    layer
        Registered layer (None: ``X``).
    specs
        The model's conditions.

    Returns
    -------
    The copy (``X`` holds the registered data).
    """
    from anndata import AnnData

    if layer is not None and layer not in like.layers:
        msg = (
            f"like has no layers[{layer!r}], which the model was trained on; put the template "
            f"rows' data there (layers: {list(like.layers)})."
        )
        raise KeyError(msg)
    data = like.X if layer is None else like.layers[layer]
    if data is None:
        msg = "like.X is empty; put the template rows' data in X (or the registered layer)."
        raise ValueError(msg)
    obs = pd.DataFrame(index=pd.Index(np.arange(like.n_obs).astype(str), dtype=object))
    for spec in specs:
        obs[spec.obs_key] = pd.Categorical.from_codes(
            np.zeros(like.n_obs, dtype=np.int64), categories=list(spec.categories)
        )
    out = AnnData(X=data, obs=obs, var=pd.DataFrame(index=like.var_names.copy()))
    if layer is not None:
        out.layers[layer] = out.X
    return out


def template_rows(n_templates: int, n_cells: int | None) -> np.ndarray:
    """Template of each output row: one per template (``None``), else cycled in order."""
    n = n_templates if n_cells is None else n_cells
    return np.arange(n) % n_templates


def template_requests(
    like: AnnData,
    specs: Sequence[ConditionSpec],
    rows: np.ndarray,
    requests: Mapping[str, Any],
) -> dict[str, Any]:
    """Condition requests of the output rows: the user's, else the templates' ``obs`` values.

    A registered covariate the user did not request and ``like.obs`` holds is taken from
    each output row's template; one neither gives is left out (drawn as in ``generate``).

    Parameters
    ----------
    like
        Template rows.
    specs
        The model's conditions.
    rows
        Template (row position in ``like``) of each output row.
    requests
        The user's requests (``labels=``/``covariates=``), which take precedence.

    Returns
    -------
    ``{obs_key: request}`` for :func:`~sc_sed.model._conditions.draw_conditions`.
    """
    out = dict(requests)
    for spec in specs:
        key = spec.obs_key
        if key in out or key not in like.obs:
            continue
        values = like.obs[key]
        if values.isna().any():
            msg = (
                f"like.obs[{key!r}] has {int(values.isna().sum())} missing value(s); fill them "
                f"with a training category or pass the condition explicitly (labels=/covariates=)."
            )
            raise ValueError(msg)
        known = {str(c) for c in spec.categories}
        unknown = sorted({str(v) for v in values.unique()} - known)
        if unknown:
            msg = (
                f"like.obs[{key!r}] holds categories the model was not trained on: "
                f"{unknown[:5]} (training categories: {list(spec.categories)[:20]}); drop those "
                f"rows or pass the condition explicitly (labels=/covariates=)."
            )
            raise ValueError(msg)
        out[key] = values.astype(object).to_numpy()[rows].tolist()
    return out
