"""Join the files of a sharded ``generate(shard=(i, n), out=...)`` run into one file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sc_sed._fs import check_anndata_out, publish_anndata, same_path, staging

SUFFIXES = (".h5ad", ".zarr")


def _open_root(path: Path):
    if path.suffix == ".zarr":
        import zarr

        return contextlib.nullcontext(zarr.open_group(path, mode="r"))
    import h5py

    return h5py.File(path, "r")


def _read_uns(path: Path) -> dict:
    from anndata.io import read_elem

    with _open_root(path) as root:
        return read_elem(root["uns"])


def _n_obs(root) -> int:
    obs = root["obs"]
    return int(obs[obs.attrs["_index"]].shape[0])


def _check_file(path: Path) -> ShardInfo:
    """Read a shard's provenance and check its layout (X present, rows and features agree)."""
    from anndata.io import read_elem

    try:
        with _open_root(path) as root:
            info = dict(read_elem(root["uns"]).get("sc_sed", {}))
            if "shard" not in info:
                msg = (
                    f"{str(path)!r} is not a shard file: write it with "
                    "generate(..., shard=(i, n), out=...)."
                )
                raise ValueError(msg)
            var_names = list(read_elem(root["var"]).index)
            shape = tuple(int(v) for v in root["X"].attrs["shape"])
            n_obs = _n_obs(root)
    except ValueError:
        raise
    except Exception as err:  # h5py/zarr/anndata raise many types for a damaged file
        msg = f"{str(path)!r} is not a readable shard file (no X, truncated or corrupted?): {err}"
        raise ValueError(msg) from err
    i, n, rows, total = (int(v) for v in info.pop("shard"))
    if shape != (n_obs, len(var_names)) or n_obs != rows:
        msg = (
            f"{str(path)!r} is damaged: X has shape {shape}, obs {n_obs} rows, var "
            f"{len(var_names)} features, the shard records {rows} rows."
        )
        raise ValueError(msg)
    return ShardInfo(path, i, n, rows, total, info, var_names)


@dataclass
class ShardInfo:
    """What :func:`join_shards` checks of one shard file."""

    path: Path
    index: int
    n: int
    rows: int
    total: int
    run: dict
    var_names: list


def _order(paths: list[Path]) -> list[ShardInfo]:
    infos = [_check_file(p) for p in paths]
    first = infos[0]
    for info in infos:
        same = (info.n, info.total, str(info.run)) == (first.n, first.total, str(first.run))
        if not same or info.var_names != first.var_names:
            msg = (
                f"{str(info.path)!r} is from another run than {str(first.path)!r} "
                "(other n, seed, settings or features)."
            )
            raise ValueError(msg)
    found = sorted(info.index for info in infos)
    if found != list(range(first.n)):
        missing = sorted(set(range(first.n)) - set(found))
        msg = f"join_shards needs each of the {first.n} shards once; missing {missing}, given {found}."
        raise ValueError(msg)
    if sum(info.rows for info in infos) != first.total:
        msg = f"The shards hold {sum(i.rows for i in infos)} rows, the run {first.total}."
        raise ValueError(msg)
    return sorted(infos, key=lambda info: info.index)


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
    ``batch_size``. Every shard is checked (readable, from the same run, each once, rows and
    features as recorded) before anything is written; shards with no rows are accepted. The
    result is built next to ``out`` and renamed into place.

    Parameters
    ----------
    paths
        The ``n`` shard files (``.h5ad`` or ``.zarr``), each shard exactly once.
    out
        Joined ``.h5ad`` or ``.zarr`` file; its folder must exist. It may not be one of
        ``paths`` (under any spelling or link).
    overwrite
        Replace an existing ``out``: an ``.h5ad`` file, or a ``.zarr`` store that sc_sed
        wrote. Any other folder is refused and left as it is.

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
    target = check_anndata_out(out, overwrite)
    inputs = [str(p) for p in paths if os.path.lexists(target) and same_path(p, target)]
    if inputs:
        msg = f"out={str(out)!r} is one of the shard files ({inputs[0]!r}); choose a new path."
        raise ValueError(msg)
    ordered = _order(paths)  # every input checked before anything is written
    uns = _read_uns(ordered[0].path)
    uns["sc_sed"].pop("shard")
    rows = [info.path for info in ordered if info.rows] or [ordered[0].path]
    with staging(target) as stage:
        tmp = stage / target.name
        concat_on_disk(rows, tmp, merge="same")
        _write_uns(tmp, uns)
        publish_anndata(tmp, target, overwrite=overwrite, kind="joined")
    return target
