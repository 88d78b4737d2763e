"""Stream generated rows to an .h5ad or .zarr file batch by batch (memory flat in rows).

The file is first written as an AnnData skeleton (``obs``, ``var``, ``uns``: small, known
before sampling), then ``X`` (and ``layers[layer]``) are written from the first batch and
grown with anndata's sparse-dataset ``append``. Everything goes to a staging folder next to
the target and is renamed into place at the end (see :mod:`sc_sed._fs`), so an interrupted
run leaves no half-written output.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from sc_sed._fs import check_anndata_out, publish_anndata, staging

if TYPE_CHECKING:
    from anndata import AnnData

SUFFIXES = (".h5ad", ".zarr")


def check_out_path(out: str | os.PathLike, overwrite: bool) -> Path:
    """Validate an output path before any work: suffix, parent folder, existing output.

    Parameters
    ----------
    out
        ``*.h5ad`` or ``*.zarr`` path.
    overwrite
        Replace an existing ``.h5ad`` file or a ``.zarr`` store written by sc_sed; any
        other folder at ``out`` is refused and left as it is.

    Returns
    -------
    The path.
    """
    return check_anndata_out(out, overwrite)


def _as_batch(x: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(x, dtype=np.float32)
    out.indices = out.indices.astype(np.int64)
    out.indptr = out.indptr.astype(np.int64)
    return out


def _open(path: Path):
    if path.suffix == ".zarr":
        import zarr

        return zarr.open_group(path, mode="a", use_consolidated=False)
    import h5py

    return h5py.File(path, "a")


def _append_batches(
    root, batches: Iterable[sp.spmatrix], layer: str | None, n_vars: int
) -> int:
    from anndata.io import sparse_dataset, write_elem

    n_rows, datasets = 0, []
    for batch in batches:
        batch = _as_batch(batch)
        if not datasets:
            write_elem(root, "X", batch)
            datasets.append(sparse_dataset(root["X"]))
            if layer is not None:
                write_elem(root["layers"], layer, batch)
                datasets.append(sparse_dataset(root["layers"][layer]))
        else:
            for dataset in datasets:
                dataset.append(batch)
        n_rows += batch.shape[0]
    if not datasets:  # no rows (an empty shard): still a well-formed (0, n_vars) X
        empty = sp.csr_matrix((0, n_vars), dtype=np.float32)
        write_elem(root, "X", empty)
        if layer is not None:
            write_elem(root["layers"], layer, empty)
    return n_rows


def write_streamed(
    path: Path,
    skeleton: AnnData,
    batches: Iterable[sp.spmatrix],
    layer: str | None,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``skeleton`` (obs/var/uns, no X) and the batches as its rows to ``path``.

    The file is built in a staging folder next to ``path`` and renamed into place, so an
    interrupted run leaves ``path`` as it was (a leftover staging folder is removed by the
    next write to ``path``).

    Parameters
    ----------
    path
        Target ``.h5ad`` or ``.zarr`` path, checked with :func:`check_out_path`.
    skeleton
        AnnData with the final ``obs`` (one row per generated row), ``var`` and ``uns``.
    batches
        Generated CSR batches, in row order (none for an empty shard: ``X`` has 0 rows).
    layer
        Also store the rows in ``layers[layer]``.
    overwrite
        Replace an existing output (see :func:`check_out_path`); without it an output that
        appeared meanwhile raises.
    """
    with staging(path) as stage:
        tmp = stage / path.name
        if path.suffix == ".zarr":
            skeleton.write_zarr(tmp)
        else:
            skeleton.write_h5ad(tmp)
        root = _open(tmp)
        try:
            n_rows = _append_batches(root, batches, layer, skeleton.n_vars)
        finally:
            if path.suffix == ".h5ad":
                root.close()
        if path.suffix == ".zarr":
            import zarr

            zarr.consolidate_metadata(tmp)
        if n_rows != skeleton.n_obs:
            raise RuntimeError(f"Generated {n_rows} rows for {skeleton.n_obs} obs entries.")
        publish_anndata(tmp, path, overwrite=overwrite, kind="generated")
