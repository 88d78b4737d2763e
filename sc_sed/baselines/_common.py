"""What every baseline model shares: data access, labels, library-size draws, the output AnnData."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sc_sed.data import check_values, get_matrix
from sc_sed.model import ConditionSpec, condition_obs, draw_conditions, synthetic_anndata

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)


def counts_matrix(adata: AnnData, layer: str | None) -> sp.csr_matrix:
    """Return the data as float32 CSR (a new matrix; ``adata`` is not modified).

    Parameters
    ----------
    adata
        Rows × features.
    layer
        Layer holding the data; None uses ``X``.

    Returns
    -------
    ``(n_obs, n_vars)`` CSR matrix without stored zeros.
    """
    raw = get_matrix(adata, layer)
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    x = sp.csr_matrix(raw, dtype=np.float32, copy=True)
    if x.shape[0] < 2 or x.shape[1] < 1:
        msg = f"{where} has shape {x.shape}; a baseline needs at least 2 rows and 1 feature."
        raise ValueError(msg)
    check_values(x.data, what=f"The values of {where}", nonnegative=True)
    x.eliminate_zeros()
    if x.nnz == 0:
        msg = f"{where} holds no non-zero value; register the layer that holds the data."
        raise ValueError(msg)
    return x


def label_spec(adata: AnnData, labels_key: str | None) -> tuple[list[ConditionSpec], np.ndarray]:
    """Condition spec of ``labels_key`` (none if None) and the ``(n_obs, n_conds)`` codes."""
    if labels_key is None:
        return [], np.zeros((adata.n_obs, 0), dtype=np.int64)
    if labels_key not in adata.obs:
        msg = f"labels_key={labels_key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)[:20]})."
        raise KeyError(msg)
    column = adata.obs[labels_key]
    if column.isna().any():
        msg = f"adata.obs[{labels_key!r}] has missing values; fill or drop those rows first."
        raise ValueError(msg)
    cats = column.astype("category")
    spec = ConditionSpec(labels_key, "labels", 0, tuple(cats.cat.categories))
    return [spec], np.asarray(cats.cat.codes, dtype=np.int64)[:, None]


def draw_library(
    library: np.ndarray, train_codes: np.ndarray, codes: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Library sizes of training rows drawn at random, per label when there are labels.

    Only rows with a positive library are drawn; a label without any falls back to all of
    them.

    Parameters
    ----------
    library
        ``(n_train,)`` total of each training row.
    train_codes
        ``(n_train, n_conds)`` condition codes of the training rows (0 or 1 column).
    codes
        ``(n, n_conds)`` codes of the rows to generate.
    rng
        Source of randomness.

    Returns
    -------
    ``(n,)`` library sizes.
    """
    positive = library > 0
    out = np.empty(codes.shape[0], dtype=np.float64)
    if codes.shape[1] == 0:
        return rng.choice(library[positive], size=codes.shape[0])
    for code in np.unique(codes[:, 0]):
        rows = np.flatnonzero(codes[:, 0] == code)
        pool = library[positive & (train_codes[:, 0] == code)]
        out[rows] = rng.choice(pool if pool.size else library[positive], size=rows.size)
    return out


class BaselineModel:
    """Shared glue of the baselines: training data summary, condition draws and output.

    Parameters
    ----------
    adata
        Training rows × features (not modified).
    layer
        Layer holding the data; None uses ``X``.
    labels_key
        Optional categorical ``obs`` column to condition on.
    """

    method: str = "baseline"

    def __init__(self, adata: AnnData, *, layer: str | None = None, labels_key: str | None = None):
        x = counts_matrix(adata, layer)
        self.layer = layer
        self.labels_key = labels_key
        self.var_names_ = pd.Index(adata.var_names.astype(str))
        self.conditions_, self.train_codes_ = label_spec(adata, labels_key)
        self.library_ = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
        self.is_integer_ = bool(np.all(x.data == np.round(x.data)))
        self.zero_fraction_ = 1.0 - x.nnz / (x.shape[0] * x.shape[1])
        self.is_trained_ = False
        self._x = x

    @property
    def n_features(self) -> int:
        """Number of features ``D``."""
        return len(self.var_names_)

    def _require_trained(self, action: str) -> None:
        if not self.is_trained_:
            msg = f"Cannot {action} before training; call {type(self).__name__}.train() first."
            raise RuntimeError(msg)

    def _draw(self, n_cells: int | None, labels: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Condition codes and library sizes of the rows to generate (NumPy, seeded)."""
        if isinstance(n_cells, int | np.integer) and n_cells < 1:
            msg = f"n_cells must be a positive integer, got {n_cells}."
            raise ValueError(msg)
        requests = {}
        if labels is not None:
            if self.labels_key is None:
                msg = f"`labels` was given but {type(self).__name__} has no labels_key; pass labels_key= when building it."
                raise ValueError(msg)
            requests[self.labels_key] = labels
        rng = np.random.default_rng(seed)
        codes = draw_conditions(self.conditions_, requests, n_cells, self.train_codes_, rng)
        return codes, draw_library(self.library_, self.train_codes_, codes, rng)

    def _output(self, x: sp.csr_matrix, codes: np.ndarray, **provenance: Any) -> AnnData:
        """Wrap generated rows in an AnnData shaped like :meth:`sc_sed.SEDModel.generate` output."""
        from sc_sed import __version__

        index = pd.Index([f"synthetic_{i}" for i in range(codes.shape[0])])
        obs = condition_obs(self.conditions_, codes, index)
        uns = {
            "version": __version__,
            "model": type(self).__name__,
            "method": self.method,
            **provenance,
        }
        var = pd.DataFrame(index=self.var_names_)
        return synthetic_anndata(x, var, obs, layer=self.layer, uns=uns)
