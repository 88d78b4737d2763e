"""Join the files of a sharded ``generate(shard=(i, n), out=...)`` run into one file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

SUFFIXES = (".h5ad", ".zarr")


def _read_uns(path: Path) -> dict:
    from anndata.io import read_elem

    if path.suffix == ".zarr":
        import zarr

        return read_elem(zarr.open_group(path, mode="r")["uns"])
    import h5py

    with h5py.File(path, "r") as f:
        return read_elem(f["uns"])


def _shard_info(path: Path) -> tuple[int, int, int, dict]:
    info = _read_uns(path).get("sc_sed", {})
    if "shard" not in info:
        msg = f"{str(path)!r} is not a shard file: write it with generate(..., shard=(i, n), out=...)."
        raise ValueError(msg)
    i, n, _, total = (int(v) for v in info.pop("shard"))
    return i, n, total, info


def _order(paths: list[Path]) -> list[Path]:
    infos = [_shard_info(p) for p in paths]
    n, total, run = infos[0][1], infos[0][2], infos[0][3]
    for path, (_, n_i, total_i, run_i) in zip(paths, infos, strict=True):
        if (n_i, total_i) != (n, total) or str(run_i) != str(run):
            msg = f"{str(path)!r} is from another run than {str(paths[0])!r} (other n, seed or settings)."
            raise ValueError(msg)
    found = sorted(info[0] for info in infos)
    if found != list(range(n)):
        missing = sorted(set(range(n)) - set(found))
        msg = f"join_shards needs each of the {n} shards once; missing {missing}, given {found}."
        raise ValueError(msg)
    return [p for _, p in sorted(zip([info[0] for info in infos], paths, strict=True))]


def _write_uns(out: Path, uns: dict) -> None:
    """Write the run's ``uns`` (concat_on_disk does not carry ``uns`` over)."""
    from anndata.io import write_elem

    if out.suffix == ".zarr":
        import zarr

        root = zarr.open_group(out, mode="a", use_consolidated=False)
        write_elem(root, "uns", uns)
        zarr.consolidate_metadata(out)
        return
    import h5py

    with h5py.File(out, "a") as root:
        if "uns" in root:
            del root["uns"]
        write_elem(root, "uns", uns)


def join_shards(
    paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Join shard files of one ``generate(shard=(i, n), out=...)`` run into ``out``.

    The rows are concatenated on disk (:func:`anndata.experimental.concat_on_disk`, memory
    flat in rows) in shard order, whatever the order of ``paths``; the result equals the
    file one process would have written with the same ``n_cells``, ``seed`` and
    ``batch_size``.

    Parameters
    ----------
    paths
        The ``n`` shard files (``.h5ad`` or ``.zarr``), each shard exactly once.
    out
        Joined ``.h5ad`` or ``.zarr`` file; its folder must exist.
    overwrite
        Replace an existing ``out``.

    Returns
    -------
    The path of the joined file.
    """
    from anndata.experimental import concat_on_disk

    if isinstance(paths, str | os.PathLike) or not len(paths):
        raise ValueError("paths must be a non-empty list of shard files.")
    paths = [Path(p) for p in paths]
    bad = [str(p) for p in paths if p.suffix not in SUFFIXES or not p.exists()]
    if bad:
        raise ValueError(f"join_shards: no .h5ad/.zarr shard file at {bad}.")
    target = Path(out)
    if target.suffix not in SUFFIXES or not target.parent.is_dir():
        raise ValueError(f"out={str(out)!r} must end in .h5ad or .zarr in an existing folder.")
    if target.exists() and not overwrite:
        raise ValueError(f"out={str(out)!r} already exists; pass overwrite=True to replace it.")
    ordered = _order(paths)
    if target.exists():
        import shutil

        shutil.rmtree(target) if target.is_dir() else target.unlink()
    concat_on_disk(ordered, target, merge="same")
    uns = _read_uns(ordered[0])
    uns["sc_sed"].pop("shard")
    _write_uns(target, uns)
    return target
