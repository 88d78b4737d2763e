"""Stream generated rows to an .h5ad or .zarr file batch by batch (memory flat in rows).

The file is first written as an AnnData skeleton (``obs``, ``var``, ``uns``: small, known
before sampling), then ``X`` (and ``layers[layer]``) are written from the first batch and
grown with anndata's sparse-dataset ``append``. Everything goes to a temporary path in the
target's folder that is renamed into place at the end, so an interrupted run leaves no
half-written output.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from anndata import AnnData

SUFFIXES = (".h5ad", ".zarr")


def check_out_path(out: str | os.PathLike, overwrite: bool) -> Path:
    """Validate an output path before any work: suffix, parent folder, existing file.

    Parameters
    ----------
    out
        ``*.h5ad`` or ``*.zarr`` path.
    overwrite
        Replace an existing file.

    Returns
    -------
    The path.
    """
    if not isinstance(out, str | os.PathLike):
        raise TypeError(f"out must be a path ending in .h5ad or .zarr, got {type(out).__name__}.")
    path = Path(out)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"out={str(out)!r} must end in .h5ad or .zarr.")
    if not path.parent.is_dir():
        raise ValueError(f"out={str(out)!r}: the folder {str(path.parent)!r} does not exist.")
    if path.exists() and not overwrite:
        raise ValueError(f"out={str(out)!r} already exists; pass overwrite=True to replace it.")
    return path


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


def _append_batches(root, batches: Iterable[sp.spmatrix], layer: str | None) -> int:
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
    return n_rows


def write_streamed(
    path: Path, skeleton: AnnData, batches: Iterable[sp.spmatrix], layer: str | None
) -> None:
    """Write ``skeleton`` (obs/var/uns, no X) and the batches as its rows to ``path``.

    Parameters
    ----------
    path
        Target ``.h5ad`` or ``.zarr`` path (replaced when it exists).
    skeleton
        AnnData with the final ``obs`` (one row per generated row), ``var`` and ``uns``.
    batches
        Generated CSR batches, in row order.
    layer
        Also store the rows in ``layers[layer]``.
    """
    tmp = path.with_name(f".{path.name}.writing-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        if path.suffix == ".zarr":
            skeleton.write_zarr(tmp)
        else:
            skeleton.write_h5ad(tmp)
        root = _open(tmp)
        try:
            n_rows = _append_batches(root, batches, layer)
        finally:
            if path.suffix == ".h5ad":
                root.close()
        if path.suffix == ".zarr":
            import zarr

            zarr.consolidate_metadata(tmp)
        if n_rows != skeleton.n_obs:
            raise RuntimeError(f"Generated {n_rows} rows for {skeleton.n_obs} obs entries.")
        _replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _replace(tmp: Path, path: Path) -> None:
    if path.is_dir():  # a zarr store cannot be renamed onto an existing folder
        shutil.rmtree(path)
    os.replace(tmp, path)
