"""Open a zarr-stored AnnData with its count matrix left on disk (read lazily by row)."""

from __future__ import annotations

import os
from typing import Any

from anndata import AnnData


def read_lazy_zarr(store: str | os.PathLike | Any) -> AnnData:
    """Open a zarr AnnData store with ``X`` read lazily; ``obs``, ``var`` and ``uns`` in memory.

    ``X`` becomes an anndata sparse dataset over the store (:func:`anndata.io.sparse_dataset`):
    indexing it reads only the requested rows' ``data``/``indices`` chunks, so
    :meth:`~sc_sed.SEDModel.setup_anndata` computes its statistics in row chunks and
    training reads each minibatch from the store, as with a backed ``.h5ad``. Layers,
    ``obsm``, ``varm`` and ``obsp`` are not opened: keep the counts in ``X``.

    Parameters
    ----------
    store
        Path (or zarr store / group) of an AnnData written with
        :meth:`anndata.AnnData.write_zarr`, whose ``X`` is a CSR matrix.

    Returns
    -------
    An in-memory AnnData whose ``X`` stays in the store. Keep the store in place while
    the AnnData is used.

    Examples
    --------
    >>> adata = sc_sed.data.read_lazy_zarr("atlas.zarr")  # doctest: +SKIP
    >>> sc_sed.SEDModel.setup_anndata(adata)  # doctest: +SKIP
    """
    import zarr
    from anndata.io import read_elem, sparse_dataset

    group = zarr.open_group(store, mode="r") if not isinstance(store, zarr.Group) else store
    if "X" not in group:
        msg = f"{store} has no X; write the counts to X (adata.X = counts) before write_zarr."
        raise ValueError(msg)
    encoding = group["X"].attrs.get("encoding-type")
    if encoding != "csr_matrix":
        kind = {"array": "a dense array", "csc_matrix": "CSC (csc_matrix)"}.get(encoding, encoding)
        msg = (
            f"X in {store} is stored as {kind}, but lazy reading needs "
            "CSR rows; rewrite the store with adata.X = scipy.sparse.csr_matrix(adata.X) "
            "before adata.write_zarr(...)."
        )
        raise ValueError(msg)
    uns = read_elem(group["uns"]) if "uns" in group else {}
    return AnnData(
        X=sparse_dataset(group["X"]),
        obs=read_elem(group["obs"]),
        var=read_elem(group["var"]),
        uns=uns,
    )
