"""Detector images ``(n_events, H, W)`` <-> sparse AnnData with one feature per pixel."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._checks import as_array, canonical_csr, get_matrix
from ._validate import validated_csr

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger(__name__)

#: ``adata.uns`` key written by :func:`from_images` and read by :func:`to_images`.
IMAGE_KEY = "sc_sed_image"


def _check_image_shape(image_shape: Any) -> tuple[int, int]:
    shape = tuple(int(s) for s in np.ravel(image_shape))
    if len(shape) != 2 or min(shape) < 1:
        msg = f"`image_shape` must be (H, W) with positive sizes, got {image_shape!r}."
        raise ValueError(msg)
    return shape  # type: ignore[return-value]


def _flat_images(
    images: Any, image_shape: Any
) -> tuple[sp.csr_matrix | np.ndarray, tuple[int, int]]:
    """Return ``(n, H*W)`` data (sparse stays sparse) and ``(H, W)``."""
    if sp.issparse(images):
        data: Any = images
    else:
        data = as_array(images, what="`images`")
        if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
            msg = f"`images` must hold real-valued energies, got dtype {data.dtype}."
            raise TypeError(msg)
    if data.ndim == 3:
        shape = (data.shape[1], data.shape[2])
        if image_shape is not None and _check_image_shape(image_shape) != shape:
            msg = f"`image_shape={image_shape!r}` disagrees with the images' shape {shape}."
            raise ValueError(msg)
        return data.reshape(data.shape[0], shape[0] * shape[1]), shape
    if data.ndim == 2:
        if image_shape is None:
            msg = "2-D `images` are flat (n_events, H*W): pass `image_shape=(H, W)`."
            raise ValueError(msg)
        shape = _check_image_shape(image_shape)
        if shape[0] * shape[1] != data.shape[1]:
            msg = f"`image_shape={shape}` has {shape[0] * shape[1]} pixels but `images` have {data.shape[1]} columns."
            raise ValueError(msg)
        return data, shape
    msg = f"`images` must be (n_events, H, W) or (n_events, H*W), got shape {data.shape}."
    raise ValueError(msg)


def _pixel_coordinate(values: Any, shape: tuple[int, int], *, axis: int, what: str) -> np.ndarray:
    """Broadcast per-row (``eta``, length H) or per-column (``phi``, length W) centres to pixels."""
    coords = np.asarray(values, dtype=np.float64).ravel()
    n_pixels = shape[0] * shape[1]
    if coords.size == shape[axis]:
        grid = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")[axis]
        return coords[grid.ravel()]
    if coords.size == n_pixels:
        return coords
    msg = f"`{what}` must have {shape[axis]} entries (one per {'row' if axis == 0 else 'column'}) or {n_pixels} (one per pixel), got {coords.size}."
    raise ValueError(msg)


def _pixel_var(shape: tuple[int, int], eta: Any, phi: Any) -> pd.DataFrame:
    row, col = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    row, col = row.ravel().astype(np.int64), col.ravel().astype(np.int64)
    var = pd.DataFrame(
        {"row": row, "col": col},
        index=pd.Index([f"px_{r}_{c}" for r, c in zip(row, col, strict=True)]),
    )
    if eta is not None:
        var["eta"] = _pixel_coordinate(eta, shape, axis=0, what="eta")
    if phi is not None:
        var["phi"] = _pixel_coordinate(phi, shape, axis=1, what="phi")
    return var


def _event_obs(obs: pd.DataFrame | None, n_events: int) -> pd.DataFrame:
    if obs is None:
        return pd.DataFrame(index=pd.Index([str(i) for i in range(n_events)]))
    if not isinstance(obs, pd.DataFrame):
        msg = f"`obs` must be a pandas DataFrame with one row per event, got {type(obs).__name__}."
        raise TypeError(msg)
    if len(obs) != n_events:
        msg = f"`obs` has {len(obs)} rows but there are {n_events} events."
        raise ValueError(msg)
    out = obs.copy()
    out.index = out.index.astype(str)
    if not out.index.is_unique:
        msg = "`obs` index (event names) must be unique; reset it or make it unique."
        raise ValueError(msg)
    return out


def from_images(
    images: npt.ArrayLike | sp.spmatrix,
    *,
    image_shape: tuple[int, int] | None = None,
    eta: npt.ArrayLike | None = None,
    phi: npt.ArrayLike | None = None,
    obs: pd.DataFrame | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> AnnData:
    """Turn detector images into a sparse AnnData with one feature per pixel.

    Parameters
    ----------
    images
        Non-negative, finite energies: ``(n_events, H, W)``, or flat ``(n_events, H*W)``
        (dense or scipy sparse, row-major pixels) together with ``image_shape``.
    image_shape
        ``(H, W)``; required for flat input, checked against 3-D input.
    eta, phi
        Pixel centres: ``eta`` has ``H`` entries (one per image row) or ``H*W`` (one per pixel),
        ``phi`` has ``W`` entries (one per image column) or ``H*W``. Needed by
        :func:`sc_sed.tl.jet_observables`.
    obs
        Per-event annotations, one row per event (its index becomes ``obs_names``).
    dtype
        Value dtype of ``X``. Energies stay real-valued (never rounded); use ``np.float64`` for
        a bit-exact round trip of float64 images. Energies it cannot hold (e.g. 4.5 in an
        integer dtype, 1e5 in ``float16``) raise a ValueError naming the value.

    Returns
    -------
    AnnData ``n_events × H*W`` with ``X`` a canonical :class:`scipy.sparse.csr_matrix`,
    ``var_names`` ``"px_{row}_{col}"``, ``var`` columns ``row``, ``col`` (int) and, when given,
    ``eta``, ``phi``; ``uns["sc_sed_image"]["shape"] = [H, W]``. :func:`to_images` inverts it.
    """
    flat, shape = _flat_images(images, image_shape)
    X = validated_csr(flat, what="Image energies", nonnegative=True, dtype=dtype)
    adata = AnnData(X=X, obs=_event_obs(obs, X.shape[0]), var=_pixel_var(shape, eta, phi))
    adata.uns[IMAGE_KEY] = {"shape": [shape[0], shape[1]]}
    logger.debug("from_images: %d events, %s grid, %d non-zeros", X.shape[0], shape, X.nnz)
    return adata


def _pixel_positions(adata: AnnData) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(row, col)`` from ``var`` or, failing that, from names ``"px_{row}_{col}"``."""
    if {"row", "col"} <= set(adata.var.columns):
        return adata.var["row"].to_numpy(dtype=np.int64), adata.var["col"].to_numpy(dtype=np.int64)
    parts = adata.var_names.str.extract(r"^px_(-?\d+)_(-?\d+)$")
    if parts.isna().any().any():
        msg = "`adata.var` has no 'row'/'col' columns and the var_names are not 'px_{row}_{col}'; build it with `from_images`."
        raise KeyError(msg)
    return parts[0].to_numpy(dtype=np.int64), parts[1].to_numpy(dtype=np.int64)


def _check_one_feature_per_pixel(
    names: pd.Index, row: np.ndarray, col: np.ndarray, shape: tuple[int, int]
) -> None:
    """Raise when two features sit at the same pixel of the grid (one would overwrite the other)."""
    inside = (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1])
    flat = np.where(inside, row * shape[1] + col, -1 - np.arange(row.size))
    unique, counts = np.unique(flat, return_counts=True)
    if np.all(counts == 1):
        return
    pixel = unique[counts > 1][0]
    clash = names[flat == pixel][:5].tolist()
    msg = (
        f"Features {clash} all sit at pixel ({pixel // shape[1]}, {pixel % shape[1]}) "
        f"(var 'row'/'col' or var_names) of the {shape[0]}×{shape[1]} grid; each pixel "
        "needs one feature. Fix `adata.var['row']`/`['col']` (e.g. rebuild with `from_images`)."
    )
    raise ValueError(msg)


def _stored_shape(adata: AnnData, image_shape: tuple[int, int] | None) -> tuple[int, int]:
    if image_shape is not None:
        return _check_image_shape(image_shape)
    if IMAGE_KEY not in adata.uns or "shape" not in adata.uns[IMAGE_KEY]:
        msg = f"`adata.uns[{IMAGE_KEY!r}]` is missing (not made by `from_images`); pass `image_shape=(H, W)`."
        raise KeyError(msg)
    return _check_image_shape(adata.uns[IMAGE_KEY]["shape"])


def to_images(
    adata: AnnData, *, layer: str | None = None, image_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Restore the dense ``(n_events, H, W)`` images from an AnnData made by :func:`from_images`.

    Pixels are placed by ``var["row"]`` and ``var["col"]`` (or, when those columns are
    missing, e.g. on generated data, by var_names ``"px_{row}_{col}"``), so reordered or subset
    pixel columns are handled; pixels absent from ``var`` are zero. Features outside the grid
    (e.g. all-zero padding with ``row = -1``) are ignored when they hold no non-zero value.
    Two features at the same pixel raise a ValueError (neither value is dropped silently).

    Parameters
    ----------
    adata
        Events × pixels AnnData, normally from :func:`from_images`.
    layer
        Layer to read instead of ``X``.
    image_shape
        ``(H, W)``; default ``adata.uns["sc_sed_image"]["shape"]``.

    Returns
    -------
    A new dense ``(n_events, H, W)`` array with the stored value dtype.
    """
    height, width = _stored_shape(adata, image_shape)
    row_of, col_of = _pixel_positions(adata)
    _check_one_feature_per_pixel(adata.var_names, row_of, col_of, (height, width))
    csr = canonical_csr(get_matrix(adata, layer), dtype=None).tocoo()
    row, col = row_of[csr.col], col_of[csr.col]
    inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
    if not np.all(inside):
        msg = f"{int(np.sum(~inside))} non-zero values sit in features outside the {height}×{width} grid."
        raise ValueError(msg)
    out = np.zeros((adata.n_obs, height, width), dtype=csr.dtype)
    out[csr.row, row, col] = csr.data
    return out
