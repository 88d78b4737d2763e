"""Model folders: SED's own save format, with no pickle anywhere on the load path.

A folder written by :meth:`SEDModel.save <sc_sed.SEDModel.save>` holds (each name
preceded by ``prefix``):

``sc_sed_model.json``
    Format name and version, package versions, model class, init parameters, the
    scvi-tools registry (setup arguments, category lists, data statistics), fitted
    attributes (training flags, data split) and the training history, as JSON
    (NumPy values tagged, see :mod:`sc_sed.model._jsoncodec`).
``sc_sed_tensors.safetensors``
    The module's state dict (weights and buffers: EMA denoiser, latent standardisation,
    allowed-feature mask) under ``module.``, and the training condition codes.
``sc_sed_metadata.h5ad``
    An AnnData with no rows: the training ``var`` and ``sc_sed_*`` ``uns`` entries.
``adata.h5ad`` / ``mdata.h5mu``
    The training data, only with ``save_anndata=True``.

JSON, safetensors and .h5ad readers construct data, never objects named by the file, so
loading a folder cannot run code. Every file is validated before a model is built from it;
problems raise :class:`ModelFileError` naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sc_sed._defaults import upgrade_init_params
from sc_sed._fs import (
    MARKER,
    OutputExistsError,
    check_replaceable,
    clean_stale,
    has_marker,
    publish,
    staging,
    write_marker,
)

from ._io_schema import (
    FORMAT,
    FORMAT_VERSION,
    SPECIAL_ATTRIBUTES,
    SchemaError,
    check_document,
    decode_history,
    encode_history,
    feature_names,
)
from ._jsoncodec import CodecError, decode, encode, loads

logger = logging.getLogger(__name__)

MODEL_FILE = "sc_sed_model.json"
TENSOR_FILE = "sc_sed_tensors.safetensors"
META_FILE = "sc_sed_metadata.h5ad"
ADATA_FILE = "adata.h5ad"
MDATA_FILE = "mdata.h5mu"
LEGACY_FILE = "model.pt"
MODULE_PREFIX = "module."
CODES_KEY = "train_condition_codes"
_PACKAGES = ("scvi-tools", "torch", "anndata", "safetensors", "numpy")


class ModelFileError(ValueError):
    """A model folder or one of its files is missing, corrupt, or not in SED's format."""


def check_prefix(prefix: Any) -> str:
    """Return ``prefix`` (``""`` for None), refusing one that could leave the model folder."""
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string or None, got {type(prefix).__name__}.")
    seps = {"/", "\\", os.sep, os.altsep} - {None}
    if any(s in prefix for s in seps) or ".." in prefix or "\0" in prefix:
        msg = (
            f"prefix={prefix!r} must be a plain file-name prefix (no path separator, no '..'); "
            "pass the folder as dir_path and a prefix such as 'run1_'."
        )
        raise ValueError(msg)
    return prefix


def file_names(prefix: str | None) -> dict[str, str]:
    """Names of a saved model's files for ``prefix`` (checked with :func:`check_prefix`)."""
    p = check_prefix(prefix)
    return {
        "model": p + MODEL_FILE,
        "tensors": p + TENSOR_FILE,
        "meta": p + META_FILE,
        "adata": p + ADATA_FILE,
        "mdata": p + MDATA_FILE,
        "legacy": p + LEGACY_FILE,
    }


# -- writing ------------------------------------------------------------------------------------
def package_versions() -> dict[str, str]:
    """Versions of sc_sed and the packages whose objects a model folder describes."""
    from sc_sed import __version__

    out = {"sc_sed": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def build_document(model) -> dict:
    """Build the encoded JSON document of a model (ValueError for unstorable attributes)."""
    attributes = {
        k: v
        for k, v in vars(model).items()
        if k.endswith("_") and not k.startswith("_") and k not in SPECIAL_ATTRIBUTES
    }
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_class": type(model).__name__,
        "versions": package_versions(),
        "init_params": model.init_params_,
        "registry": model.registry_,
        "attributes": attributes,
        "history": encode_history(getattr(model, "history_", None)),
    }
    try:
        return encode(doc)
    except CodecError as err:
        msg = f"Cannot save the model: {err}"
        raise ValueError(msg) from err


def model_tensors(model) -> dict[str, torch.Tensor]:
    """Collect the module state dict (CPU copies) and the training condition codes."""
    out = {
        MODULE_PREFIX + k: v.detach().to("cpu").contiguous().clone()
        for k, v in model.module.state_dict().items()
    }
    codes = getattr(model, "train_condition_codes_", None)
    if codes is not None:
        out[CODES_KEY] = torch.as_tensor(np.ascontiguousarray(codes, dtype=np.int64))
    return out


def _write_metadata(model, path: Path) -> None:
    from anndata import AnnData

    from ._output import writable_frame

    var = writable_frame(model.training_var_)
    meta = AnnData(obs=pd.DataFrame(index=pd.Index([], dtype=object)), var=var)
    meta.uns.update(dict(model.training_uns_))
    meta.write_h5ad(path)


def _write_files(model, folder: Path, names: dict, save_anndata: bool, write_kwargs: dict):
    from safetensors.torch import save_file

    doc = build_document(model)
    (folder / names["model"]).write_text(json.dumps(doc, allow_nan=True), encoding="utf-8")
    save_file(
        model_tensors(model),
        str(folder / names["tensors"]),
        metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)},
    )
    _write_metadata(model, folder / names["meta"])
    if save_anndata:
        if model.adata is None:
            msg = "save_anndata=True but the model has no AnnData (it was loaded without one)."
            raise ValueError(msg)
        is_mudata = model.registry_.get("setup_method_name") == "setup_mudata"
        model.adata.write(folder / names["mdata" if is_mudata else "adata"], **write_kwargs)


def _carry_over(old: Path, new: Path, ours: set[str]) -> None:
    """Copy entries of an existing folder that are not files of this prefix's save."""
    for entry in old.iterdir():
        dest = new / entry.name
        if entry.name in ours or dest.exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dest, symlinks=True)
        else:
            try:
                os.link(entry, dest, follow_symlinks=False)
            except OSError:
                shutil.copy2(entry, dest, follow_symlinks=False)


def is_model_folder(folder: Path) -> bool:
    """Return whether ``folder`` is a model folder sc_sed wrote (may be overwritten).

    Folders saved before the marker file existed are recognised by their model files; an
    empty folder holds nothing to lose.
    """
    if has_marker(folder):
        return True
    entries = list(folder.iterdir())
    known = (MODEL_FILE, TENSOR_FILE, LEGACY_FILE)
    return not entries or any(e.name.endswith(known) and e.is_file() for e in entries)


def save_model(
    model,
    dir_path: str | os.PathLike,
    *,
    prefix: str | None,
    overwrite: bool,
    save_anndata: bool,
    write_kwargs: dict,
) -> None:
    """Write ``model`` to ``dir_path`` atomically and exclusively (staging folder, one rename).

    Without ``overwrite`` an existing ``dir_path`` raises, also one another process creates
    while this one writes. With ``overwrite=True`` only a model folder written by sc_sed is
    replaced: the files of an earlier save with the same prefix are replaced or removed (a
    stale ``adata.h5ad`` does not survive); other files in the folder stay.
    """
    names = file_names(prefix)
    target = Path(dir_path)
    what = f"dir_path={str(target)!r}"
    clean_stale(target)  # first: puts back a folder a killed overwrite had moved aside
    if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink()):
        msg = f"{what} exists and is not a folder; pass a folder path to save to."
        raise OutputExistsError(msg)
    check_replaceable(
        target, overwrite=overwrite, ours=is_model_folder, what=what, files_ok=False
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with staging(target) as stage:
        tmp = stage / target.name
        tmp.mkdir()
        write_marker(tmp, "model")
        _write_files(model, tmp, names, save_anndata, write_kwargs)
        if overwrite and target.is_dir():
            _carry_over(target, tmp, {*names.values(), MARKER})
        publish(tmp, target, overwrite=overwrite, ours=is_model_folder, what=what, files_ok=False)


# -- reading ------------------------------------------------------------------------------------
@dataclass
class SavedModel:
    """The validated contents of a model folder."""

    doc: dict
    tensors: dict[str, torch.Tensor]
    var: pd.DataFrame
    uns: dict
    adata: Any
    paths: dict[str, Path]
    adata_path: Path | None = None


#: Largest file of each kind that :meth:`SEDModel.load <sc_sed.SEDModel.load>` reads, in
#: bytes; a larger one is refused (with ``os.stat``) before anything is read. The JSON
#: document holds the registry, the data split and the history; the metadata .h5ad the
#: training ``var``.
MAX_FILE_BYTES = {
    "model": 256 << 20,
    "tensors": 64 << 30,
    "meta": 1 << 30,
    "adata": 1 << 40,
    "mdata": 1 << 40,
}
#: Largest total size that the datasets of an .h5ad/.h5mu file may declare (uncompressed).
MAX_DECLARED_BYTES = {"meta": 4 << 30, "adata": 4 << 40, "mdata": 4 << 40}
_KIND_NAMES = {
    "model": "model document",
    "tensors": "tensor file",
    "meta": "model metadata .h5ad",
    "adata": "saved training data",
    "mdata": "saved training data",
}


def legacy_message(folder: Path, legacy: Path) -> str:
    """Why a pickle-format folder is refused, and how to convert it."""
    return (
        f"{folder} holds a model in the previous pickle-based format ({legacy.name}) and "
        f"no {MODEL_FILE}. Loading a pickle file can run arbitrary code, so SEDModel.load "
        "does not read it. If you trust where the folder came from, convert it once with "
        f"`sc_sed.SEDModel.convert_legacy_save({str(folder)!r}, 'converted_model')` and load "
        "the converted folder."
    )


def _check_size(path: Path, info: os.stat_result, kind: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        msg = (
            f"{path} is not a regular file (a folder, device, FIFO or socket); a model "
            "folder holds only regular files."
        )
        raise ModelFileError(msg)
    if info.st_size == 0:
        msg = f"{path} is empty (0 bytes); the save was interrupted or the file truncated."
        raise ModelFileError(msg)
    limit = MAX_FILE_BYTES[kind]
    if info.st_size > limit:
        msg = (
            f"{path}: file size {info.st_size:,} bytes exceeds the limit for a "
            f"{_KIND_NAMES[kind]} ({limit:,} bytes); it is not a file SEDModel.save wrote."
        )
        raise ModelFileError(msg)


def check_file(path: Path, kind: str) -> None:
    """Refuse a missing, empty, oversized or non-regular file (read nothing).

    Parameters
    ----------
    path
        The file.
    kind
        Its key in :data:`MAX_FILE_BYTES`.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path} is missing; the model folder is incomplete.") from None
    except OSError as err:
        raise ModelFileError(f"{path} cannot be read: {err}") from err
    _check_size(path, info, kind)


def _read_bytes(path: Path, kind: str) -> bytes:
    """Read a checked file whole, from the very file checked (a FIFO cannot block)."""
    check_file(path, kind)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise ModelFileError(f"{path} cannot be read: {err}") from err
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        _check_size(path, info, kind)  # the file may have been replaced meanwhile
        data = file.read(info.st_size + 1)
    if len(data) != info.st_size:
        raise ModelFileError(f"{path} changed while it was read; load the folder again.")
    return data


def read_document(path: Path, model_cls: type, allowed: list[str]) -> dict:
    """Read, decode and validate ``sc_sed_model.json``."""
    data = _read_bytes(path, "model")
    try:
        raw = loads(data)
    except CodecError as err:
        raise ModelFileError(f"{path} is not a model document: {err}") from err
    except UnicodeDecodeError as err:
        raise ModelFileError(
            f"{path} is not a UTF-8 JSON text file (binary or random bytes)."
        ) from err
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path} is not valid JSON (truncated or corrupted?): {err}") from err
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ModelFileError(
            f"{path} is not an sc_sed model file (format {found!r}, expected {FORMAT!r})."
        )
    if raw.get("format_version") != FORMAT_VERSION:
        msg = (
            f"{path} has format version {raw.get('format_version')!r}; this sc_sed reads "
            f"version {FORMAT_VERSION}. Load it with the sc_sed version that wrote it "
            f"({raw.get('versions', {}).get('sc_sed', 'unknown') if isinstance(raw.get('versions'), dict) else 'unknown'})."
        )
        raise ModelFileError(msg)
    try:
        doc = decode(raw)
        if isinstance(doc, dict) and "init_params" in doc:  # files of earlier versions
            doc["init_params"] = upgrade_init_params(doc["init_params"])
        check_document(doc, model_cls, allowed)
    except (CodecError, SchemaError) as err:
        raise ModelFileError(f"{path} does not match the sc_sed model schema: {err}") from err
    return doc


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read the safetensors file (CPU tensors)."""
    from safetensors.torch import load

    data = _read_bytes(path, "tensors")
    try:
        return load(data)
    except Exception as err:  # safetensors raises its own error types for every bad header
        raise ModelFileError(
            f"{path} is not a readable safetensors file (truncated or corrupted?): {err}"
        ) from err


def _check_h5_layout(path: Path, kind: str) -> None:
    """Refuse links or storage outside the file and datasets declaring too many bytes."""
    import h5py

    declared, problems = 0, []

    def visit(name: str, link: Any) -> None:
        nonlocal declared
        if not isinstance(link, h5py.HardLink | h5py.SoftLink):
            problems.append(f"{name!r} is a link to another file")
            return
        obj = file.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual or obj.external:
                problems.append(f"dataset {name!r} stores its data outside the file")
            declared += int(obj.size or 0) * obj.dtype.itemsize

    try:
        with h5py.File(path, "r") as file:
            file.visititems_links(visit)
    except Exception as err:  # h5py raises OSError, KeyError, ValueError for damaged files
        msg = f"{path} is not a readable {_KIND_NAMES[kind]} (truncated or corrupted?): {err}"
        raise ModelFileError(msg) from err
    if declared > MAX_DECLARED_BYTES[kind]:
        problems.append(
            f"its datasets declare {declared:,} bytes, more than {MAX_DECLARED_BYTES[kind]:,}"
        )
    if problems:
        raise ModelFileError(f"{path} is refused: {'; '.join(problems[:3])}.")


def _read_h5(path: Path, kind: str, mudata: bool = False):
    what = _KIND_NAMES[kind]
    check_file(path, kind)
    _check_h5_layout(path, kind)
    try:
        if mudata:
            import mudata as md

            return md.read_h5mu(path)
        import anndata as ad

        return ad.read_h5ad(path)
    except Exception as err:  # h5py/anndata raise many types for a damaged file
        raise ModelFileError(
            f"{path} is not a readable {what} (truncated or corrupted?): {err}"
        ) from err


def read_folder(
    dir_path: str | os.PathLike,
    model_cls: type,
    *,
    prefix: str | None,
    load_adata: bool,
    allowed: list[str],
) -> SavedModel:
    """Read and validate every file of a model folder (nothing is built yet)."""
    folder = Path(dir_path)
    if not folder.is_dir():
        raise ModelFileError(f"No model folder at {folder}.")
    names = file_names(prefix)
    paths = {k: folder / v for k, v in names.items()}
    if not paths["model"].exists():
        if paths["legacy"].exists():
            raise ModelFileError(legacy_message(folder, paths["legacy"]))
        msg = (
            f"{paths['model']} is missing: {folder} is not a model folder written by SEDModel.save."
        )
        raise ModelFileError(msg)
    doc = read_document(paths["model"], model_cls, allowed)
    for key in ("tensors", "meta"):  # every file is present and of plausible size first
        check_file(paths[key], key)
    tensors = read_tensors(paths["tensors"])
    meta = _read_h5(paths["meta"], "meta")
    check_metadata(meta, doc["registry"], paths["meta"])
    adata, adata_path = None, None
    if load_adata:
        is_mudata = doc["registry"]["setup_method_name"] == "setup_mudata"
        key = "mdata" if is_mudata else "adata"
        if os.path.lexists(paths[key]):
            adata, adata_path = _read_h5(paths[key], key, mudata=is_mudata), paths[key]
    return SavedModel(doc, tensors, meta.var, dict(meta.uns), adata, paths, adata_path)


def check_metadata(meta: Any, registry: dict, path: Path) -> None:
    """Check the metadata AnnData against the registry: no rows, the same features.

    With several modalities the names may carry their modality (``"rna:CD3E"``).
    """
    blocks = feature_names(registry)
    expected = np.concatenate(blocks) if blocks else np.array([], dtype=str)
    names = np.asarray(meta.var_names).astype(str)
    if meta.n_obs != 0:
        raise ModelFileError(f"{path}: obs has {meta.n_obs} rows; the metadata file has none.")
    if names.shape != expected.shape:
        msg = (
            f"{path}: var has {names.size} features, the registry in {MODEL_FILE} "
            f"{expected.size}."
        )
        raise ModelFileError(msg)
    modalities = registry["setup_args"].get("modalities") or []
    if len(blocks) > 1 and len(modalities) == len(blocks):
        pairs = zip(modalities, blocks, strict=True)
        prefixed = np.concatenate([[f"{m}:{n}" for n in b] for m, b in pairs])
        if (names == prefixed).all():
            expected = prefixed
    if not (names == expected).all():
        i = int(np.flatnonzero(names != expected)[0])
        msg = (
            f"{path}: var_names differ from the feature names (column_names) in {MODEL_FILE}: "
            f"position {i} is {names[i]!r:.80}, the registry has {expected[i]!r:.80}."
        )
        raise ModelFileError(msg)
    bad = [k for k in meta.uns if not str(k).startswith("sc_sed_")]
    if bad:
        raise ModelFileError(f"{path}: uns holds entries {bad[:5]} that a model file never has.")


def check_tensors(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> dict:
    """Return the module entries of ``tensors``, checked against the freshly built module."""
    expected = module.state_dict()
    got = {k[len(MODULE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODULE_PREFIX)}
    stray = [k for k in tensors if not k.startswith(MODULE_PREFIX) and k != CODES_KEY]
    missing = [MODULE_PREFIX + k for k in expected if k not in got]
    unexpected = [MODULE_PREFIX + k for k in got if k not in expected] + stray
    if missing or unexpected:
        msg = (
            f"{path} does not match the model {MODEL_FILE} describes: missing tensors "
            f"{missing[:5]}, unexpected {unexpected[:5]}."
        )
        raise ModelFileError(msg)
    for key, ref in expected.items():
        t = got[key]
        if t.shape != ref.shape or t.dtype != ref.dtype:
            msg = (
                f"{path}: tensor {key!r} has shape {tuple(t.shape)} ({t.dtype}), the model "
                f"{MODEL_FILE} describes needs {tuple(ref.shape)} ({ref.dtype})."
            )
            raise ModelFileError(msg)
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{path}: tensor {key!r} contains NaN or infinite values.")
    return got


def check_codes(tensors: dict, conditions: list, trained: bool, path: Path) -> np.ndarray | None:
    """Return the training condition codes, checked: ``(n, n_conditions)`` int64 codes."""
    codes = tensors.get(CODES_KEY)
    if codes is None:
        if trained:
            raise ModelFileError(f"{path}: the diffusion is trained but {CODES_KEY!r} is missing.")
        return None
    n_cats = np.array([c.n_cats for c in conditions], dtype=np.int64)
    ok = codes.dtype == torch.int64 and codes.ndim == 2 and codes.shape[1] == len(conditions)
    codes = codes.numpy()
    if ok and codes.size:
        ok = bool((codes >= 0).all() and (codes < n_cats).all())
    if not ok or codes.shape[0] == 0 and trained:
        msg = (
            f"{path}: {CODES_KEY!r} must be a non-empty int64 array with {len(conditions)} "
            f"columns of codes below {n_cats.tolist()}."
        )
        raise ModelFileError(msg)
    return codes


def _build(model_cls: type, saved: SavedModel, adata: Any):
    params = saved.doc["init_params"]  # upgraded from earlier versions by read_document
    kwargs = {**params["non_kwargs"], **params["kwargs"].get("module_kwargs", {})}
    try:
        return model_cls(adata, registry=saved.doc["registry"], **kwargs)
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as err:
        msg = f"{saved.paths['model']}: its init_params do not build a model: {err}"
        raise ModelFileError(msg) from err


def restore_model(model_cls: type, saved: SavedModel, adata: Any):
    """Build the model from a validated folder: init parameters, tensors, attributes.

    The module is first built on PyTorch's ``meta`` device (no memory) and compared with
    the tensor file, so the real one is only allocated when it is as large as the file.
    """
    doc = saved.doc
    with torch.device("meta"):
        shapes = _build(model_cls, saved, None)
    state = check_tensors(shapes.module, saved.tensors, saved.paths["tensors"])
    model = _build(model_cls, saved, adata or None)
    model.module.load_state_dict(state, strict=True)
    attrs = doc["attributes"]
    codes = check_codes(
        saved.tensors, model._conditions, bool(attrs["diffusion_trained_"]), saved.paths["tensors"]
    )
    _check_metadata(saved, model)
    for name, value in attrs.items():
        setattr(model, name, value)
    model.train_condition_codes_ = codes
    model.training_var_ = saved.var
    model.training_uns_ = saved.uns
    model.history_ = decode_history(doc["history"])
    return model


def _check_metadata(saved: SavedModel, model) -> None:
    n_vars = model.module.n_features
    if saved.var.shape[0] != n_vars:
        msg = f"{saved.paths['meta']}: var has {saved.var.shape[0]} features, the model {n_vars}."
        raise ModelFileError(msg)
    attrs, json_path = saved.doc["attributes"], saved.paths["model"]
    for name in ("max_nonzero_", "index_head_", "value_likelihood_"):
        if name in attrs and attrs[name] != getattr(model, name):
            msg = (
                f"{json_path}: attributes/{name} is {attrs[name]!r}, but its init_params and "
                f"registry give {getattr(model, name)!r}."
            )
            raise ModelFileError(msg)
