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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

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
)
from ._jsoncodec import CodecError, decode, encode

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


def legacy_message(folder: Path, legacy: Path) -> str:
    """Why a pickle-format folder is refused, and how to convert it."""
    return (
        f"{folder} holds a model in the previous pickle-based format ({legacy.name}) and "
        f"no {MODEL_FILE}. Loading a pickle file can run arbitrary code, so SEDModel.load "
        "does not read it. If you trust where the folder came from, convert it once with "
        f"`sc_sed.SEDModel.convert_legacy_save({str(folder)!r}, 'converted_model')` and load "
        "the converted folder."
    )


def _nonempty_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ModelFileError(f"{path} is missing; the model folder is incomplete.")
    data = path.read_bytes()
    if not data:
        raise ModelFileError(
            f"{path} is empty (0 bytes); the save was interrupted or the file truncated."
        )
    return data


def read_document(path: Path, model_cls: type, allowed: list[str]) -> dict:
    """Read, decode and validate ``sc_sed_model.json``."""
    data = _nonempty_bytes(path)
    try:
        raw = json.loads(data.decode("utf-8"))
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
        check_document(doc, model_cls, allowed)
    except (CodecError, SchemaError) as err:
        raise ModelFileError(f"{path} does not match the sc_sed model schema: {err}") from err
    return doc


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read the safetensors file (CPU tensors)."""
    from safetensors.torch import load

    data = _nonempty_bytes(path)
    try:
        return load(data)
    except Exception as err:  # safetensors raises its own error types for every bad header
        raise ModelFileError(
            f"{path} is not a readable safetensors file (truncated or corrupted?): {err}"
        ) from err


def _read_h5(path: Path, what: str, mudata: bool = False):
    _nonempty_bytes(path)
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
    tensors = read_tensors(paths["tensors"])
    meta = _read_h5(paths["meta"], "model metadata .h5ad")
    adata = None
    if load_adata:
        is_mudata = doc["registry"]["setup_method_name"] == "setup_mudata"
        key = "mdata" if is_mudata else "adata"
        if paths[key].exists():
            adata = _read_h5(paths[key], "saved training data", mudata=is_mudata)
    return SavedModel(doc, tensors, meta.var, dict(meta.uns), adata, paths)


def check_tensors(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> dict:
    """Return the module entries of ``tensors``, checked against the freshly built module."""
    expected = module.state_dict()
    got = {k[len(MODULE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODULE_PREFIX)}
    stray = [k for k in tensors if not k.startswith(MODULE_PREFIX) and k != CODES_KEY]
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected] + stray
    if missing or unexpected:
        msg = f"{path} does not match the model: missing tensors {missing[:5]}, unexpected {unexpected[:5]}."
        raise ModelFileError(msg)
    for key, ref in expected.items():
        t = got[key]
        if t.shape != ref.shape or t.dtype != ref.dtype:
            msg = (
                f"{path}: tensor {key!r} has shape {tuple(t.shape)} ({t.dtype}), the model "
                f"needs {tuple(ref.shape)} ({ref.dtype})."
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


#: SEDModel arguments added or given a new default after format version 1 was introduced,
#: with the value a saved model that does not name them was built (and trained) with.
EARLIER_DEFAULTS = {
    "hazard_init": False,
    "current_block_hazard": False,
    "n_encoder_pcs": 0,
    "context_width": 0,
    "value_latent_term": "none",
}


def restore_model(model_cls: type, saved: SavedModel, adata: Any):
    """Build the model from a validated folder: init parameters, tensors, attributes."""
    doc, json_path = saved.doc, saved.paths["model"]
    params = doc["init_params"]
    kwargs = dict(params["kwargs"].get("module_kwargs", {}))
    for key, value in EARLIER_DEFAULTS.items():  # saved before these defaults: as trained
        if key not in params["non_kwargs"] and key not in kwargs:
            kwargs[key] = value
    try:
        model = model_cls(adata or None, registry=doc["registry"], **params["non_kwargs"], **kwargs)
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFileError(f"{json_path}: its parameters do not build a model: {err}") from err
    state = check_tensors(model.module, saved.tensors, saved.paths["tensors"])
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
