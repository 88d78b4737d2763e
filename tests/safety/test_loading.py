"""Hostile model folders: each malformed file fails with ModelFileError naming file and field.

One case per corruption of a tiny saved model (wrong type, negative or huge size, deep
nesting, huge integer, oversized or special file, mismatched names between files, missing
or extra tensors, wrong shapes or dtypes, NaN). Each case checks the error type, that the
message names the file and the field, that the folder is left exactly as it was, and that
nothing was unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import sc_sed
from sc_sed.model._io import MAX_FILE_BYTES, ModelFileError

from ..model.conftest import FIT, TINY, tiny_counts

MODEL, TENSORS = "sc_sed_model.json", "sc_sed_tensors.safetensors"
META, ADATA = "sc_sed_metadata.h5ad", "adata.h5ad"
WEIGHT = "module.diffusion.latent_mean"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny conditional model (labels and batches), saved with its AnnData."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type", batch_key="batch")
    model = sc_sed.SEDModel(adata, **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=32, **FIT)
    path = tmp_path_factory.mktemp("loading") / "model"
    model.save(path, save_anndata=True)
    return path


@pytest.fixture(autouse=True)
def _no_unpickling(monkeypatch):
    """Record every call of pickle's and torch's unpicklers (none may happen on load)."""
    calls = []

    def record(name):
        def refuse(*args, **kwargs):
            calls.append(name)
            raise RuntimeError(f"{name} called while loading a model folder")

        return refuse

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, record(f"pickle.{name}"))
    monkeypatch.setattr(torch, "load", record("torch.load"))
    yield
    assert calls == []


def _state(folder: Path) -> dict:
    """Names, kinds, sizes, times and (for files up to 64 MiB) contents under ``folder``."""
    out = {}
    for entry in sorted(folder.rglob("*")):
        info = entry.lstat()
        digest = None
        if entry.is_file() and not entry.is_symlink() and info.st_size <= 64 << 20:
            digest = hashlib.sha256(entry.read_bytes()).hexdigest()
        out[entry.name] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return out


# -- corruptions ----------------------------------------------------------------------------
def _json(edit):
    def corrupt(folder):
        path = folder / MODEL
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))

    return corrupt


def _raw(placeholder_edit, text):
    """Put a placeholder in the document, then replace it by raw JSON ``text``."""

    def corrupt(folder):
        _json(placeholder_edit)(folder)
        path = folder / MODEL
        path.write_text(path.read_text().replace('"@@RAW@@"', text))

    return corrupt


def _param(name, value):
    def edit(doc):
        params = doc["init_params"]
        group = params["non_kwargs"]
        if name not in group:
            group = params["kwargs"].setdefault("module_kwargs", {})
        group[name] = value

    return _json(edit)


def _x_state(doc):
    return doc["registry"]["field_registries"]["X"]["state_registry"]


def _stats(key, value):
    return _json(lambda d: _x_state(d)["sc_sed_stats"].__setitem__(key, value))


def _array(dtype, data):
    return {"__ndarray__": dtype, "shape": [len(data)], "data": data}


def _labels(categories):
    def edit(doc):
        state = doc["registry"]["field_registries"]["labels"]["state_registry"]
        state["categorical_mapping"] = _array("|O", categories)

    return _json(edit)


def _rename_column(doc):
    _x_state(doc)["column_names"]["data"][0] = "not_a_gene"


def _tensors(edit):
    def corrupt(folder):
        path = folder / TENSORS
        tensors = load_file(path)
        edit(tensors)
        save_file(tensors, path)

    return corrupt


def _drop(key):
    return lambda t: t.pop(key)


def _nan(t):
    t[WEIGHT] = t[WEIGHT].clone()
    t[WEIGHT][0] = float("nan")


def _lying_header(folder):
    """Claim a larger shape for one tensor than the file holds (header length kept)."""
    path = folder / TENSORS
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header[WEIGHT]["shape"] = [TINY["n_latent"] + 1]
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    path.write_bytes(data[:8] + text.ljust(n) + data[8 + n :])


def _h5(name, edit):
    def corrupt(folder):
        path = folder / name
        data = ad.read_h5ad(path)
        edit(data)
        path.unlink()
        data.write_h5ad(path)

    return corrupt


def _meta_with_rows(folder):
    path = folder / META
    meta = ad.read_h5ad(path)
    rows = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]), var=meta.var, uns=dict(meta.uns))
    path.unlink()
    rows.write_h5ad(path)


def _rename_var(data):
    data.var_names = ["not_a_gene", *data.var_names[1:]]


def _h5py(name, edit):
    def corrupt(folder):
        with h5py.File(folder / name, "r+") as file:
            edit(file)

    return corrupt


def _external_link(file):
    file["uns/sc_sed_elsewhere"] = h5py.ExternalLink("/etc/hostname", "/")


def _declared_bomb(file):
    file.create_dataset("uns/sc_sed_bomb", shape=(1 << 40,), dtype="f8", chunks=(1024,))


def _oversized(name, kind):
    def corrupt(folder):
        with open(folder / name, "r+b") as file:
            try:
                file.truncate(MAX_FILE_BYTES[kind] + 1)  # sparse: no disk space used
            except OSError as err:
                pytest.skip(f"this file system has no sparse files that large: {err}")

    return corrupt


def _fifo(name):
    def corrupt(folder):
        (folder / name).unlink()
        os.mkfifo(folder / name)

    return corrupt


def _dev_zero(name):
    def corrupt(folder):
        (folder / name).unlink()
        (folder / name).symlink_to("/dev/zero")

    return corrupt


def _folder(name):
    def corrupt(folder):
        (folder / name).unlink()
        (folder / name).mkdir()

    return corrupt


def _missing(name):
    return lambda folder: (folder / name).unlink()


def _case(id_, corrupt, files, field):
    return pytest.param(corrupt, (files,) if isinstance(files, str) else files, field, id=id_)


CASES = [
    # the JSON document: decoder limits
    _case("deep-nesting", _raw(lambda d: d["history"].update(x="@@RAW@@"), "[" * 100_000 + "]" * 100_000), MODEL, "nested"),
    _case("huge-int-literal", _raw(lambda d: d["init_params"]["non_kwargs"].update(n_hidden="@@RAW@@"), "9" * 5000), MODEL, "n_hidden"),
    _case("long-string", _json(lambda d: d["attributes"].update(run_name_="x" * 100_000)), MODEL, "run_name_"),
    _case("scalar-overflow", _json(lambda d: d["attributes"].update(note_={"__npscalar__": "<i1", "value": 300})), MODEL, "note_"),
    _case("array-shape-bomb", _stats("seen", {"__ndarray__": "|b1", "shape": [1 << 32, 1 << 32], "data": []}), MODEL, "seen"),
    _case("array-string-numbers", _stats("n_detected", _array("<i8", ["1"] * 30)), MODEL, "n_detected"),
    # the JSON document: init_params, range-checked before anything is built
    _case("size-wrong-type", _param("n_hidden", "32"), MODEL, "n_hidden"),
    _case("size-bool", _param("n_heads", True), MODEL, "n_heads"),
    _case("size-negative", _param("n_layers", -1), MODEL, "n_layers"),
    _case("size-huge", _param("n_hidden", 10**12), MODEL, "n_hidden"),
    _case("size-huge-ff", _param("n_ff", 10**10), MODEL, "n_ff"),
    _case("size-huge-latent", _param("n_latent", 10**9), MODEL, "n_latent"),
    _case("heads-not-dividing", _param("n_heads", 3), MODEL, "n_heads"),
    _case("max-nonzero-huge", _param("max_nonzero", 10**12), MODEL, "max_nonzero"),
    _case("block-size-huge", _param("block_size", 10**9), MODEL, "block_size"),
    _case("widths-empty", _param("denoiser_widths", []), MODEL, "denoiser_widths"),
    _case("widths-huge", _param("denoiser_widths", [10**9, 8]), MODEL, "denoiser_widths"),
    _case("rate-nan", _param("dropout_rate", float("nan")), MODEL, "dropout_rate"),
    _case("rate-above-one", _param("cond_dropout", 2.0), MODEL, "cond_dropout"),
    _case("unknown-choice", _param("index_head", "bogus"), MODEL, "index_head"),
    _case("derived-module-argument", _param("n_features", 5), MODEL, "n_features"),
    _case("logsnr-reversed", _param("logsnr_min", 50.0), MODEL, "logsnr_min"),
    # the JSON document: registry
    _case("n-vars-negative", _stats("n_vars", -1), MODEL, "n_vars"),
    _case("n-vars-huge", _stats("n_vars", 10**12), MODEL, "n_vars"),
    _case("n-obs-zero", _stats("n_obs", 0), MODEL, "n_obs"),
    _case("detected-above-rows", _stats("n_detected", _array("<i8", [10**6] * 30)), MODEL, "n_detected"),
    _case("value-sum-nan", _stats("value_sum", _array("<f8", [float("nan")] * 30)), MODEL, "value_sum"),
    _case("column-names-short", _json(lambda d: _x_state(d).update(column_names=_array("|O", ["g"] * 29))), MODEL, "column_names"),
    _case("categories-repeat", _labels(["type_0", "type_0", "type_2"]), MODEL, "categories"),
    _case("categories-empty", _labels([]), MODEL, "categories"),
    _case("setup-arg-type", _json(lambda d: d["registry"]["setup_args"].update(labels_key={"a": 1})), MODEL, "labels_key"),
    _case("versions-type", _json(lambda d: d["versions"].update(sc_sed=1)), MODEL, "versions"),
    # the JSON document: attributes and history
    _case("indices-out-of-range", _json(lambda d: d["attributes"]["train_indices_"]["data"].__setitem__(0, 10**6)), MODEL, "train_indices_"),
    _case("attribute-disagrees", _json(lambda d: d["attributes"].update(max_nonzero_=3)), MODEL, "max_nonzero_"),
    _case("index-head-disagrees", _json(lambda d: d["attributes"].update(index_head_="factorised")), MODEL, "index_head_"),
    _case("history-shape", _json(lambda d: next(iter(d["history"].values()))["values"].update(shape=[7, 7])), MODEL, "history"),
    # names cross-checked between files
    _case("registry-names-vs-var", _json(_rename_column), (META, MODEL), "var_names"),
    _case("extra-category-vs-embedding", _labels(["type_0", "type_1", "type_2", "type_3"]), (TENSORS, MODEL), "embed"),
    _case("meta-var-renamed", _h5(META, _rename_var), (META, MODEL), "var_names"),
    _case("meta-var-short", _h5(META, lambda m: m._inplace_subset_var(np.arange(1, m.n_vars))), (META, MODEL), "var"),
    _case("adata-var-renamed", _h5(ADATA, _rename_var), (ADATA, MODEL), "var_names"),
    _case("adata-unknown-category", _h5(ADATA, lambda a: a.obs.__setitem__("cell_type", a.obs["cell_type"].cat.rename_categories(lambda c: f"new_{c}"))), (ADATA, MODEL), "new_type"),
    # the tensor file
    _case("tensor-extra", _tensors(lambda t: t.update({"module.evil": torch.zeros(2)})), TENSORS, "module.evil"),
    _case("tensor-stray", _tensors(lambda t: t.update({"evil": torch.zeros(2)})), TENSORS, "evil"),
    _case("tensor-missing", _tensors(_drop(WEIGHT)), TENSORS, "latent_mean"),
    _case("tensor-shape", _tensors(lambda t: t.update({WEIGHT: torch.zeros(3)})), TENSORS, "latent_mean"),
    _case("tensor-dtype", _tensors(lambda t: t.update({WEIGHT: t[WEIGHT].double()})), TENSORS, "latent_mean"),
    _case("tensor-nan", _tensors(_nan), TENSORS, "latent_mean"),
    _case("codes-float", _tensors(lambda t: t.update(train_condition_codes=t["train_condition_codes"].float())), TENSORS, "train_condition_codes"),
    _case("codes-out-of-range", _tensors(lambda t: t.update(train_condition_codes=t["train_condition_codes"] + 50)), TENSORS, "train_condition_codes"),
    _case("header-lies", _lying_header, TENSORS, "safetensors"),
    # the metadata .h5ad
    _case("meta-obs-rows", _meta_with_rows, META, "obs"),
    _case("meta-foreign-uns", _h5py(META, lambda f: f["uns"].create_dataset("evil", data=1)), META, "uns"),
    _case("meta-external-link", _h5py(META, _external_link), META, "link"),
    _case("meta-declared-bomb", _h5py(META, _declared_bomb), META, "declare"),
    # sizes and kinds of file, for every file
    *[
        _case(f"{kind}-{damage}", corrupt(name), name, field)
        for kind, name in (("model", MODEL), ("tensors", TENSORS), ("meta", META), ("adata", ADATA))
        for damage, corrupt, field in (
            ("oversized", lambda n, k=kind: _oversized(n, k), "file size"),
            ("fifo", _fifo, "regular file"),
            ("dev-zero", _dev_zero, "regular file"),
            ("folder", _folder, "regular file"),
        )
    ],
    *[_case(f"missing-{n}", _missing(n), n, "missing") for n in (MODEL, TENSORS, META)],
]  # fmt: skip


@pytest.mark.parametrize(("corrupt", "files", "field"), CASES)
def test_malformed_folder_fails_naming_file_and_field(saved, tmp_path, corrupt, files, field):
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    corrupt(folder)
    before = _state(folder)
    with pytest.raises(ModelFileError) as info:
        sc_sed.SEDModel.load(folder, accelerator="cpu")
    message = str(info.value)
    for name in files:
        assert name in message, message
    assert field in message, message
    assert _state(folder) == before  # loading never writes


def test_untouched_copy_loads(saved, tmp_path):
    """The corruptions above start from a folder that loads (so each case tests one thing)."""
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    before = _state(folder)
    model = sc_sed.SEDModel.load(folder, accelerator="cpu")
    assert model.adata is not None and model.diffusion_trained_
    assert _state(folder) == before


def test_loading_checks_sizes_before_reading(saved, tmp_path, monkeypatch):
    """An oversized file is refused from its size alone: nothing of it is read."""
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    _oversized(TENSORS, "tensors")(folder)
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    with pytest.raises(ModelFileError, match="file size"):
        sc_sed.SEDModel.load(folder, accelerator="cpu")
    assert not any(p.endswith(TENSORS) for p in opened)


def test_huge_sizes_fail_before_any_module_is_built(saved, tmp_path, monkeypatch):
    """``n_hidden=10**12`` is refused by the schema, before the model class is called."""
    from sc_sed.model import _io

    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    _param("n_hidden", 10**12)(folder)
    built = []
    monkeypatch.setattr(_io, "_build", lambda *a, **k: built.append(a))
    with pytest.raises(ModelFileError, match="n_hidden"):
        sc_sed.SEDModel.load(folder, accelerator="cpu")
    assert built == []


def test_sizes_in_range_but_unlike_the_tensor_file_allocate_nothing(saved, tmp_path):
    """Sizes within the schema's ranges are compared with the tensor file on the meta device."""
    folder = tmp_path / "m"
    shutil.copytree(saved, folder)
    _param("n_hidden", 8192)(folder)
    _param("n_ff", 65536)(folder)
    _param("n_layers", 64)(folder)  # about 10**11 parameters: would need ~400 GB
    with pytest.raises(ModelFileError, match=f"{TENSORS}.*(missing|shape)"):
        sc_sed.SEDModel.load(folder, accelerator="cpu")
