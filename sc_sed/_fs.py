"""Safe outputs on disk: staging folders, exclusive publication, markers, stale-temp cleanup.

Everything sc_sed writes (model folders, generated ``.h5ad``/``.zarr`` files, joined shards)
is built inside a *staging* folder next to the target, ``.{name}.sc_sed-tmp-XXXX``, and then
published with one rename:

- without ``overwrite`` the rename never replaces anything (``renameat2(RENAME_NOREPLACE)``
  on Linux, ``renamex_np(RENAME_EXCL)`` on macOS, a hard link for files otherwise), so of two
  processes saving to the same new path exactly one succeeds;
- with ``overwrite`` only a file, or a folder that carries sc_sed's marker file
  (:data:`MARKER`), is replaced; any other folder is refused and left as it is.

A staging folder holds a lock file locked for as long as its writer runs; the lock goes with
the process (also on ``SIGKILL``), so a later write to the same target removes staging
folders whose writer is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

#: Name of the marker file in every folder sc_sed writes (model folders, ``.zarr`` stores).
MARKER = ".sc_sed"
STAGE_TAG = ".sc_sed-tmp-"
LOCK_NAME = ".lock"
#: Staging folders without a lock file (their writer died right after creating them) and
#: temporary folders of earlier sc_sed versions count as stale after this many seconds.
UNLOCKED_STALE_S = 600.0
_OLD_TAGS = (".saving-", ".writing-")


class OutputExistsError(FileExistsError, ValueError):
    """The output path exists (or appeared meanwhile) and may not be replaced."""


# -- exclusive rename ---------------------------------------------------------------------------
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCL = 4


def _native_noreplace(src: Path, dst: Path) -> bool:
    """Try the OS's rename-without-replace; True when done, False when unavailable."""
    if _LIBC is None:
        return False
    s, d = os.fsencode(src), os.fsencode(dst)
    if sys.platform.startswith("linux") and hasattr(_LIBC, "renameat2"):
        rc = _LIBC.renameat2(_AT_FDCWD, s, _AT_FDCWD, d, _RENAME_NOREPLACE)
    elif sys.platform == "darwin" and hasattr(_LIBC, "renamex_np"):
        rc = _LIBC.renamex_np(s, d, _RENAME_EXCL)
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # file system without the flag: fall back
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst``, failing with :class:`FileExistsError` when ``dst`` exists.

    Parameters
    ----------
    src
        File or folder to move (same file system as ``dst``).
    dst
        New path; never replaced, even when it appears at the last moment.
    """
    src, dst = Path(src), Path(dst)
    if _native_noreplace(src, dst):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))
    if src.is_dir() and not src.is_symlink():
        # POSIX rename onto an existing non-empty folder fails (ENOTEMPTY) and Windows never
        # replaces; only an empty folder created after the check above could be replaced.
        os.rename(src, dst)
        return
    os.link(src, dst, follow_symlinks=False)  # fails when dst exists
    os.unlink(src)


# -- markers and "is this ours" -----------------------------------------------------------------
def write_marker(folder: str | os.PathLike, kind: str) -> None:
    """Write sc_sed's marker file into ``folder`` (a folder sc_sed created).

    Parameters
    ----------
    folder
        Model folder or ``.zarr`` store.
    kind
        What the folder holds (``"model"``, ``"generated"``, ``"joined"``).
    """
    from sc_sed import __version__

    text = json.dumps({"written_by": "sc_sed", "kind": kind, "version": __version__})
    (Path(folder) / MARKER).write_text(text + "\n", encoding="utf-8")


def has_marker(folder: str | os.PathLike) -> bool:
    """Return whether ``folder`` is a real folder holding sc_sed's marker file."""
    folder = Path(folder)
    marker = folder / MARKER
    return folder.is_dir() and not folder.is_symlink() and marker.is_file()


def is_generated_output(path: str | os.PathLike) -> bool:
    """Return whether ``path`` is a ``.zarr`` store that sc_sed wrote (may be replaced).

    Stores written before the marker existed are recognised by their ``uns/sc_sed`` group.
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    if has_marker(path):
        return True
    zarr_meta = any((path / name).is_file() for name in ("zarr.json", ".zgroup"))
    return zarr_meta and (path / "uns" / "sc_sed").is_dir()


def check_replaceable(
    path: Path, *, overwrite: bool, ours: Callable[[Path], bool], what: str, files_ok: bool
) -> None:
    """Raise when an existing ``path`` may not be replaced.

    Parameters
    ----------
    path
        The target.
    overwrite
        Whether the caller asked to replace an existing target.
    ours
        Whether an existing folder at ``path`` was written by sc_sed.
    what
        Name of the argument, for the messages (e.g. ``"out='x.zarr'"``).
    files_ok
        Whether a regular file at ``path`` may be replaced (else only ``ours`` folders).
    """
    if not os.path.lexists(path):
        return
    if not overwrite:
        msg = f"{what} already exists; pass overwrite=True to replace it, or choose another path."
        raise OutputExistsError(msg)
    is_dir = path.is_dir() and not path.is_symlink()
    if is_dir and ours(path):
        return
    if not is_dir and files_ok:
        return
    kind = "folder" if is_dir else "file"
    msg = (
        f"{what} is an existing {kind} that sc_sed did not write (no {MARKER} marker); "
        "overwrite=True only replaces sc_sed's own outputs. Choose another path, or move or "
        "delete it yourself."
    )
    raise OutputExistsError(msg)


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Return whether two paths name the same file or folder (symlinks and spellings resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


# -- staging, publication, cleanup --------------------------------------------------------------
def _lock(path: Path):
    """Open and lock ``path`` for this process (released when the process ends)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # no fcntl (Windows): an open file cannot be deleted there
        pass
    return fd


def _writer_gone(stage: Path) -> bool:
    lock = stage / LOCK_NAME
    if not lock.exists():
        return time.time() - stage.stat().st_mtime > UNLOCKED_STALE_S
    try:
        import fcntl
    except ImportError:
        try:
            lock.unlink()  # succeeds only when no live writer holds it open
        except OSError:
            return False
        return True
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # the lock (if taken) goes with it; the folder is removed next
    return True


def _stale_candidates(target: Path) -> Iterator[tuple[Path, bool]]:
    prefix = f".{target.name}"
    for entry in target.parent.iterdir():
        name = entry.name
        if not name.startswith(prefix) or entry.is_symlink():
            continue
        rest = name[len(prefix) :]
        if rest.startswith(STAGE_TAG) and entry.is_dir():
            yield entry, True
        elif any(rest.startswith(tag) for tag in _OLD_TAGS):
            yield entry, False


def clean_stale(target: str | os.PathLike) -> list[Path]:
    """Remove staging folders of ``target`` left by writers that are gone (killed runs).

    Parameters
    ----------
    target
        The output path whose leftovers to look for (in its parent folder).

    Returns
    -------
    The removed paths.
    """
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for entry, locked in _stale_candidates(target):
        try:
            gone = (
                _writer_gone(entry)
                if locked
                else time.time() - entry.lstat().st_mtime > UNLOCKED_STALE_S
            )
        except OSError:
            continue
        if gone:
            if locked:
                _rescue_replaced(entry, target)
            logger.warning("Removing %s, left by an interrupted sc_sed write.", entry)
            _remove(entry)
            removed.append(entry)
    return removed


def _rescue_replaced(stage: Path, target: Path) -> None:
    """Put back an output that a killed :func:`publish` had moved aside (never delete it)."""
    for old in stage.glob("old-*"):
        try:
            rename_noreplace(old, target)
            logger.warning("Restored %s from an interrupted replacement.", target)
        except FileExistsError:
            keep = target.with_name(f".{target.name}.sc_sed-backup-{old.name[4:]}")
            os.rename(old, keep)
            logger.warning("Kept the output an interrupted replacement had moved aside at %s.", keep)
        except FileNotFoundError:  # another process rescued it first
            continue


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def staging(target: str | os.PathLike) -> Iterator[Path]:
    """Make a locked staging folder next to ``target``; remove it (and what is left) at exit.

    Stale staging folders of the same target are removed first. Build the output at
    ``stage / target.name`` and :func:`publish` it from there.

    Parameters
    ----------
    target
        The final output path (its folder must exist).

    Yields
    ------
    The staging folder.
    """
    target = Path(target)
    clean_stale(target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGE_TAG}", dir=target.parent))
    fd = _lock(stage / LOCK_NAME)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        os.close(fd)


def publish(
    src: Path,
    target: Path,
    *,
    overwrite: bool,
    ours: Callable[[Path], bool],
    what: str,
    files_ok: bool = True,
) -> None:
    """Move the finished ``src`` (inside a staging folder) to ``target`` in one rename.

    Parameters
    ----------
    src
        The finished output, ``stage / target.name``.
    target
        Where it goes.
    overwrite
        Replace an existing target (a file, or a folder for which ``ours`` holds); without
        it an existing target, even one that appeared a moment ago, raises.
    ours
        Whether an existing folder at ``target`` was written by sc_sed.
    what
        Name of the target for messages.
    files_ok
        Whether a regular file at ``target`` may be replaced.
    """
    if not overwrite:
        try:
            rename_noreplace(src, target)
        except FileExistsError as err:
            msg = f"{what} appeared while this output was written (another process?); not replaced."
            raise OutputExistsError(msg) from err
        return
    check_replaceable(target, overwrite=True, ours=ours, what=what, files_ok=files_ok)
    if not (target.is_dir() and not target.is_symlink()):
        os.replace(src, target)  # a file (or nothing): atomic replacement
        return
    old = src.parent / f"old-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)  # inside the staging folder: removed with it
    try:
        rename_noreplace(src, target)
    except BaseException:
        try:
            rename_noreplace(old, target)
        except OSError:
            keep = target.with_name(f".{target.name}.sc_sed-backup-{uuid.uuid4().hex[:8]}")
            os.rename(old, keep)
            logger.error("Another process wrote %s meanwhile; the old one is at %s.", target, keep)
        raise


# -- AnnData outputs (.h5ad / .zarr) ------------------------------------------------------------
ANNDATA_SUFFIXES = (".h5ad", ".zarr")


def _ours_anndata(path: Path) -> bool:
    return path.suffix == ".zarr" and is_generated_output(path)


def check_anndata_out(out: str | os.PathLike, overwrite: bool, *, name: str = "out") -> Path:
    """Validate an ``.h5ad``/``.zarr`` output path before any work.

    Parameters
    ----------
    out
        The output path; its folder must exist.
    overwrite
        Replace an existing output: an ``.h5ad`` file, or a ``.zarr`` store sc_sed wrote.
        Any other folder (and a file where a ``.zarr`` store should go) is refused.
    name
        Argument name for the messages.

    Returns
    -------
    The path.
    """
    if not isinstance(out, str | os.PathLike):
        msg = f"{name} must be a path ending in .h5ad or .zarr, got {type(out).__name__}."
        raise TypeError(msg)
    path = Path(out)
    if path.suffix not in ANNDATA_SUFFIXES:
        raise ValueError(f"{name}={str(out)!r} must end in .h5ad or .zarr.")
    if not path.parent.is_dir():
        raise ValueError(f"{name}={str(out)!r}: the folder {str(path.parent)!r} does not exist.")
    clean_stale(path)
    check_replaceable(
        path, overwrite=overwrite, ours=_ours_anndata, what=f"{name}={str(out)!r}",
        files_ok=path.suffix == ".h5ad",
    )  # fmt: skip
    return path


def publish_anndata(src: Path, target: Path, *, overwrite: bool, kind: str) -> None:
    """Publish a finished ``.h5ad``/``.zarr`` output built at ``src`` (see :func:`publish`).

    A ``.zarr`` store gets sc_sed's marker file first, so a later ``overwrite=True`` may
    replace it.

    Parameters
    ----------
    src
        The finished output inside a staging folder.
    target
        Where it goes.
    overwrite
        Replace an existing output that :func:`check_anndata_out` accepts.
    kind
        What the output holds, for the marker (``"generated"``, ``"joined"``).
    """
    if target.suffix == ".zarr":
        write_marker(src, kind)
    publish(
        src, target, overwrite=overwrite, ours=_ours_anndata, what=f"out={str(target)!r}",
        files_ok=target.suffix == ".h5ad",
    )  # fmt: skip
