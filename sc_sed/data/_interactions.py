"""Long interaction tables ``(user, item, value)`` <-> sparse AnnData (users × items)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._checks import canonical_csr, check_values
from ._coo import to_coo

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger(__name__)

#: ``adata.uns`` key written by :func:`from_interactions` (id and value dtypes).
INTERACTIONS_KEY = "sc_sed_interactions"

_AGGREGATIONS = ("sum", "max", "last", "error")


def _check_columns(df: pd.DataFrame, columns: dict[str, Any]) -> None:
    if not isinstance(df, pd.DataFrame):
        msg = f"`df` must be a pandas DataFrame of interactions, got {type(df).__name__}."
        raise TypeError(msg)
    named = [c for c in columns.values() if c is not None]
    if len(set(named)) != len(named):
        msg = f"`user_col`, `item_col` and `value_col` must name different columns, got {columns}."
        raise ValueError(msg)
    missing = {
        arg: col for arg, col in columns.items() if col is not None and col not in df.columns
    }
    if missing:
        listed = ", ".join(f"{arg}={col!r}" for arg, col in missing.items())
        msg = f"Column(s) not found in `df`: {listed}. Available columns: {list(df.columns)}."
        raise KeyError(msg)


#: ``pandas.api.types.infer_dtype`` results of object id columns that mix id types.
_MIXED_IDS = ("mixed", "mixed-integer", "mixed-integer-float")


def _encode_ids(series: pd.Series, *, what: str) -> tuple[np.ndarray, pd.Index, str]:
    """Return integer codes, the sorted unique ids as ``str``, and the id dtype to restore.

    Integer ids keep their exact values (64-bit unsigned included); a column mixing id
    types (e.g. ``1`` and ``"1"``, which would print alike) is refused.
    """
    if series.isna().any():
        msg = f"{what} column {series.name!r} has {int(series.isna().sum())} missing ids; drop those rows first."
        raise ValueError(msg)
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        values: np.ndarray = series.to_numpy(dtype=getattr(dtype, "numpy_dtype", dtype))
        kind = str(dtype)
    else:
        inferred = pd.api.types.infer_dtype(series, skipna=False)
        if inferred in _MIXED_IDS:
            types = sorted({type(v).__name__ for v in series.to_numpy()})
            msg = (
                f"{what} column {series.name!r} mixes id types ({', '.join(types)}), so ids such "
                "as 1 and '1' could not be told apart. Convert the column to one type first, "
                f"e.g. `df[{series.name!r}] = df[{series.name!r}].astype(str)`."
            )
            raise TypeError(msg)
        values = series.astype(str).to_numpy(dtype=str)
        kind = "int" if inferred == "integer" else "str"  # Python ints beyond 64 bits
    unique, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), pd.Index(unique.astype(str).tolist()), kind


def _restore_ids(names: pd.Index, kind: str) -> np.ndarray | pd.Series:
    if kind == "str":
        return np.asarray(names, dtype=object)
    try:
        ints = [int(n) for n in names]  # exact for any size, unlike a float or int64 parse
        if kind == "int":
            return np.asarray(ints, dtype=object)
        return pd.Series(ints, dtype=kind)
    except (TypeError, ValueError, OverflowError):
        logger.warning("Ids recorded as %s are not all integers any more; returning str.", kind)
    return np.asarray(names, dtype=object)


def _restore_values(values: np.ndarray, kind: str | None) -> np.ndarray:
    if kind is None:
        return values
    try:
        dtype = np.dtype(kind)
    except TypeError:  # pandas extension dtype (e.g. "Int64"): keep the stored floats
        return values
    if np.issubdtype(dtype, np.integer) and not np.all(values == np.round(values)):
        return values
    return values.astype(dtype)


def _numeric_values(series: pd.Series) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(series.dtype):
        msg = f"Value column {series.name!r} must be numeric, got dtype {series.dtype}."
        raise TypeError(msg)
    dtype = series.dtype
    if (
        pd.api.types.is_integer_dtype(dtype)
        and not pd.api.types.is_bool_dtype(dtype)
        and not series.isna().any()
    ):  # integers stay exact (a float64 holds them only up to 2**53)
        values = series.to_numpy(dtype=getattr(dtype, "numpy_dtype", dtype))
    else:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    check_values(values, what=f"Values in column {series.name!r}")
    return values


def _aggregate(
    users: np.ndarray, items: np.ndarray, values: np.ndarray, duplicates: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.DataFrame({"u": users, "i": items, "v": values})
    if duplicates == "error":
        dup = frame.duplicated(["u", "i"], keep=False)
        if dup.any():
            msg = (
                f"{int(dup.sum())} rows repeat a (user, item) pair; aggregate them first or pass "
                "`duplicates='sum'`, `'max'` or `'last'`."
            )
            raise ValueError(msg)
        return users, items, values
    grouped = frame.groupby(["u", "i"], sort=True)["v"]
    agg = getattr(grouped, duplicates)()
    return (
        agg.index.get_level_values(0).to_numpy(),
        agg.index.get_level_values(1).to_numpy(),
        agg.to_numpy(),
    )


def _metadata(meta: pd.DataFrame | None, names: pd.Index, *, what: str) -> pd.DataFrame:
    if meta is None:
        return pd.DataFrame(index=names)
    if not isinstance(meta, pd.DataFrame):
        msg = f"`{what}` must be a pandas DataFrame indexed by id, got {type(meta).__name__}."
        raise TypeError(msg)
    meta = meta.copy()
    meta.index = meta.index.astype(str)
    if not meta.index.is_unique:
        dups = meta.index[meta.index.duplicated()].unique()[:5].tolist()
        msg = f"`{what}` index must have unique ids; repeated: {dups}."
        raise ValueError(msg)
    n_missing = int((~names.isin(meta.index)).sum())
    if n_missing:
        logger.warning("%d ids have no row in `%s`; their metadata are NaN.", n_missing, what)
    return meta.reindex(names)


def from_interactions(
    df: pd.DataFrame,
    *,
    user_col: str,
    item_col: str,
    value_col: str | None = None,
    item_metadata: pd.DataFrame | None = None,
    user_metadata: pd.DataFrame | None = None,
    duplicates: Literal["sum", "max", "last", "error"] = "sum",
    dtype: npt.DTypeLike = np.float32,
) -> AnnData:
    """Pivot a long interaction table into a sparse users × items AnnData.

    Parameters
    ----------
    df
        One row per interaction (not modified).
    user_col, item_col
        Columns holding user and item ids (str or int, 64-bit unsigned included; no
        missing ids). Ids are kept exactly; a column that mixes id types (e.g. ``1`` and
        ``"1"``) raises a TypeError rather than merging ids that print alike.
    value_col
        Column of finite values (ratings, counts, dwell times). ``None`` means implicit
        feedback: each row counts as ``1.0``.
    item_metadata
        Item annotations indexed by item id; its columns are copied into ``var`` (NaN for items
        without a row; items without interactions are not added).
    user_metadata
        User annotations indexed by user id; its columns are copied into ``obs``.
    duplicates
        How repeated ``(user, item)`` rows combine: ``"sum"`` (implicit feedback becomes a
        count), ``"max"`` (e.g. binary implicit feedback), ``"last"`` (last row in table order
        wins), or ``"error"`` to raise.
    dtype
        Value dtype of ``X``. Values it cannot hold (after combining duplicates), e.g. 300
        or 4.5 in ``int8``, raise a ValueError naming the value; nothing is wrapped or
        truncated.

    Returns
    -------
    AnnData users × items, ``obs_names``/``var_names`` the sorted unique ids as ``str``,
    ``X`` a canonical :class:`scipy.sparse.csr_matrix` (values that are or sum to zero are not
    stored), ``uns["sc_sed_interactions"]`` the id and value dtypes so that
    :func:`to_interactions` restores integer ids.
    """
    _check_columns(df, {"user_col": user_col, "item_col": item_col, "value_col": value_col})
    if duplicates not in _AGGREGATIONS:
        msg = f"`duplicates` must be one of {_AGGREGATIONS}, got {duplicates!r}."
        raise ValueError(msg)
    user_codes, user_names, user_kind = _encode_ids(df[user_col], what="User")
    item_codes, item_names, item_kind = _encode_ids(df[item_col], what="Item")
    if value_col is None:
        values = np.ones(len(df), dtype=np.float64)
    else:
        values = _numeric_values(df[value_col])
    rows, cols, vals = _aggregate(user_codes, item_codes, values, duplicates)
    if np.any(vals == 0):
        logger.warning(
            "%d (user, item) values are zero and are stored as exact zeros.", int(np.sum(vals == 0))
        )
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(len(user_names), len(item_names)))
    adata = AnnData(
        X=canonical_csr(coo, dtype=dtype, what="the interaction values"),
        obs=_metadata(user_metadata, user_names, what="user_metadata"),
        var=_metadata(item_metadata, item_names, what="item_metadata"),
    )
    value_kind = "float32" if value_col is None else str(df[value_col].dtype)
    adata.uns[INTERACTIONS_KEY] = {
        "user_dtype": user_kind,
        "item_dtype": item_kind,
        "value_dtype": value_kind,
    }
    return adata


def to_interactions(
    adata: AnnData,
    *,
    layer: str | None = None,
    user_col: str = "user",
    item_col: str = "item",
    value_col: str = "value",
) -> pd.DataFrame:
    """Return the non-zero entries of a users × items AnnData as a long interaction table.

    Parameters
    ----------
    adata
        Users × items AnnData, e.g. from :func:`from_interactions` or a generated one.
    layer
        Layer to read instead of ``X``.
    user_col, item_col, value_col
        Names of the output columns.

    Returns
    -------
    DataFrame with one row per stored non-zero, sorted by user then item. Ids come back with
    the dtype recorded by :func:`from_interactions` (integers as integers, else ``str``);
    integer-valued columns come back as integers when every value is integral.
    """
    if len({user_col, item_col, value_col}) != 3:
        msg = f"`user_col`, `item_col` and `value_col` must differ, got {user_col!r}, {item_col!r}, {value_col!r}."
        raise ValueError(msg)
    info = adata.uns.get(INTERACTIONS_KEY, {})
    rows, cols, values = to_coo(adata, layer=layer)
    df = pd.DataFrame(
        {
            user_col: _restore_ids(adata.obs_names[rows], info.get("user_dtype", "str")),
            item_col: _restore_ids(adata.var_names[cols], info.get("item_dtype", "str")),
            value_col: _restore_values(values, info.get("value_dtype")),
        }
    )
    return df.sort_values([user_col, item_col], kind="stable").reset_index(drop=True)
