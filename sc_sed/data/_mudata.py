"""MuData (several modalities of the same cells) <-> one AnnData with a joint feature space."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from ._checks import canonical_csr, get_matrix

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger(__name__)

#: ``adata.uns`` key written by :func:`concat_modalities`, read by :func:`split_modalities`.
MODALITIES_KEY = "sc_sed_modalities"


def _chosen_modalities(mdata: MuData, modalities: Sequence[str] | None) -> list[str]:
    if not isinstance(mdata, MuData):
        msg = f"`mdata` must be a MuData object, got {type(mdata).__name__}."
        raise TypeError(msg)
    chosen = (
        list(mdata.mod)
        if modalities is None
        else [modalities]
        if isinstance(modalities, str)
        else list(modalities)
    )
    unknown = [m for m in chosen if m not in mdata.mod]
    if unknown:
        msg = f"Modalities {unknown} not found; `mdata` has {list(mdata.mod)}."
        raise KeyError(msg)
    if not chosen or len(set(chosen)) != len(chosen):
        msg = f"`modalities` must be a non-empty list of distinct names, got {chosen}."
        raise ValueError(msg)
    return chosen


def _aligned(mods: dict[str, AnnData]) -> dict[str, AnnData]:
    """Order every modality's cells like the first; they must hold the same cells."""
    names = list(mods)
    reference = mods[names[0]].obs_names
    if not reference.is_unique:
        msg = f"Modality {names[0]!r} has non-unique obs_names; make them unique first."
        raise ValueError(msg)
    out = {}
    for name, adata in mods.items():
        if adata.obs_names.equals(reference):
            out[name] = adata
        elif adata.obs_names.is_unique and set(adata.obs_names) == set(reference):
            out[name] = adata[reference]
        else:
            msg = (
                f"Modality {name!r} does not hold the same cells as {names[0]!r}; keep the "
                "shared cells first, e.g. `mudata.pp.intersect_obs(mdata)`."
            )
            raise ValueError(msg)
    return out


def _joint_var_names(mods: dict[str, AnnData]) -> tuple[pd.Index, bool]:
    for name, adata in mods.items():
        if not adata.var_names.is_unique:
            msg = f"Modality {name!r} has non-unique var_names; call `.var_names_make_unique()`."
            raise ValueError(msg)
    plain = pd.Index(np.concatenate([a.var_names.to_numpy(dtype=object) for a in mods.values()]))
    if plain.is_unique:
        return plain, False
    prefixed = [f"{name}:{v}" for name, a in mods.items() for v in a.var_names]
    logger.info("Feature names collide across modalities; prefixing them with '<modality>:'.")
    return pd.Index(prefixed), True


def _joint_var(mods: dict[str, AnnData], names: pd.Index) -> pd.DataFrame:
    var = pd.concat(
        [a.var.reset_index(drop=True) for a in mods.values()], axis=0, ignore_index=True
    )
    var.index = names
    for col in var.select_dtypes(include="object").columns:
        var[col] = _writable(var[col])
    labels = np.repeat(list(mods), [a.n_vars for a in mods.values()])
    var["modality"] = pd.Categorical(labels, categories=list(mods))
    return var


def _writable(column: pd.Series) -> pd.Series:
    """Make a column padded with missing values (object dtype) writable to ``.h5ad``."""
    present = column.dropna()
    if present.map(lambda v: isinstance(v, bool | np.bool_)).all():
        return column.astype("boolean")
    if present.map(lambda v: isinstance(v, str)).all():
        return column.astype("category")
    return column


def _joint_obs(mdata: MuData, mods: dict[str, AnnData]) -> pd.DataFrame:
    reference = next(iter(mods.values())).obs_names
    prefixes = tuple(f"{m}:" for m in mdata.mod)
    global_cols = [c for c in mdata.obs.columns if not str(c).startswith(prefixes)]
    obs = mdata.obs.loc[reference, global_cols].copy()
    for name, adata in mods.items():
        for col in adata.obs.columns:
            obs[f"{name}:{col}"] = adata.obs[col].values
    return obs


def concat_modalities(
    mdata: MuData,
    *,
    modalities: Sequence[str] | None = None,
    layer: str | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> AnnData:
    """Join the features of several modalities into one AnnData (one feature index space).

    Parameters
    ----------
    mdata
        MuData whose chosen modalities hold the same cells (any order; aligned to the first).
    modalities
        Modalities to join, in this order; default all, in ``mdata.mod`` order.
    layer
        Layer to read in every modality instead of ``X``.
    dtype
        Value dtype of ``X``.

    Returns
    -------
    AnnData with ``X`` the modalities side by side (canonical
    :class:`scipy.sparse.csr_matrix`), ``var`` the union of the modalities' ``var`` columns plus
    a categorical ``modality`` column, ``obs`` the global ``mdata.obs`` columns plus each
    modality's ``obs`` columns as ``"{modality}:{column}"``. When any feature name occurs in
    more than one modality, **every** ``var_name`` is prefixed ``"{modality}:"``; otherwise the
    names are kept. ``uns["sc_sed_modalities"]`` records what :func:`split_modalities` needs.
    """
    mods = _aligned({m: mdata.mod[m] for m in _chosen_modalities(mdata, modalities)})
    names, prefixed = _joint_var_names(mods)
    X = sp.hstack(
        [canonical_csr(get_matrix(a, layer), dtype=dtype) for a in mods.values()], format="csr"
    )
    adata = AnnData(
        X=canonical_csr(X, dtype=dtype), obs=_joint_obs(mdata, mods), var=_joint_var(mods, names)
    )
    info: dict = {
        "modalities": list(mods),
        "prefixed": prefixed,
        "var_columns": {m: [str(c) for c in a.var.columns] for m, a in mods.items()},
        "var_dtypes": {m: [str(t) for t in a.var.dtypes] for m, a in mods.items()},
    }
    if layer is not None:
        info["layer"] = layer
    adata.uns[MODALITIES_KEY] = info
    return adata


def _modality_var(var: pd.DataFrame, name: str, info: dict) -> pd.DataFrame:
    columns = list(
        info.get("var_columns", {}).get(name, [c for c in var.columns if c != "modality"])
    )
    out = var[columns].copy()
    for col, kind in zip(columns, info.get("var_dtypes", {}).get(name, []), strict=False):
        try:
            out[col] = out[col].astype(kind)
        except (TypeError, ValueError):
            logger.debug("Could not restore dtype %s of var column %r.", kind, col)
    if info.get("prefixed", False):
        out.index = pd.Index([str(v)[len(name) + 1 :] for v in out.index])
    return out


def _modality_obs(obs: pd.DataFrame, name: str) -> pd.DataFrame:
    prefix = f"{name}:"
    columns = [c for c in obs.columns if str(c).startswith(prefix)]
    out = obs[columns].copy()
    out.columns = [str(c)[len(prefix) :] for c in columns]
    return out


def split_modalities(adata: AnnData) -> MuData:
    """Split an AnnData made by :func:`concat_modalities` back into a MuData.

    Parameters
    ----------
    adata
        AnnData with a ``var["modality"]`` column (e.g. generated from a joined one).

    Returns
    -------
    MuData with one modality per ``var["modality"]`` value (order recorded by
    :func:`concat_modalities`), original feature names and ``var`` columns, each modality's
    ``obs`` columns taken from ``"{modality}:{column}"``, the remaining ``obs`` columns as
    global ``mdata.obs``. When a layer was joined, each modality holds the values in ``X``
    and in that layer.
    """
    if "modality" not in adata.var.columns:
        msg = "`adata.var` has no 'modality' column; build it with `concat_modalities`."
        raise KeyError(msg)
    info = adata.uns.get(MODALITIES_KEY, {})
    labels = adata.var["modality"].astype(str).to_numpy()
    order = [str(m) for m in info.get("modalities", pd.unique(labels))]
    unknown = sorted(set(labels) - set(order))
    if unknown:
        msg = f"`var['modality']` holds {unknown}, not among the recorded modalities {order}."
        raise ValueError(msg)
    X = canonical_csr(get_matrix(adata, None), dtype=None)
    mods = {}
    for name in order:
        mask = labels == name
        mod = AnnData(
            X=canonical_csr(X[:, np.flatnonzero(mask)], dtype=None),
            obs=_modality_obs(adata.obs, name),
            var=_modality_var(adata.var.loc[mask], name, info),
        )
        if "layer" in info:
            mod.layers[str(info["layer"])] = mod.X.copy()
        mods[name] = mod
    with mudata.set_options(pull_on_update=False):  # keep modality columns out of mdata.obs
        mdata = MuData(mods)
    prefixes = tuple(f"{m}:" for m in order)
    for col in [c for c in adata.obs.columns if not str(c).startswith(prefixes)]:
        mdata.obs[col] = adata.obs[col].values
    return mdata
