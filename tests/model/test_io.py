"""SED's own save format: round trips, validation of every file, no code runs on load."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import sc_sed
import sc_sed.cli
from sc_sed.model._io import ModelFileError, file_names
from sc_sed.model._jsoncodec import CodecError, decode, encode

from .conftest import FIT, TINY, tiny_counts

GEN = {"n_steps": 4, "progress_bar": False, "seed": 3}


class _Payload:
    """Unpickling this creates ``marker`` (it calls ``open(marker, "w")``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    model, _ = trained
    path = tmp_path_factory.mktemp("io") / "model"
    model.save(path)
    return path


def _copy(saved, tmp_path, name="m"):
    dst = tmp_path / name
    shutil.copytree(saved, dst)
    return dst


def _same_generation(a, b):
    x, y = a.generate(10, **GEN), b.generate(10, **GEN)
    return (x.X != y.X).nnz == 0 and x.obs.equals(y.obs)


# -- round trip -------------------------------------------------------------------------------
def test_folder_holds_only_the_new_format(saved):
    names = sorted(p.name for p in saved.iterdir())
    assert names == sorted([
        ".sc_sed", "sc_sed_model.json", "sc_sed_tensors.safetensors", "sc_sed_metadata.h5ad",
    ])  # fmt: skip
    doc = json.loads((saved / "sc_sed_model.json").read_text())
    assert doc["format"] == "sc_sed.SEDModel" and doc["format_version"] == 1
    assert {"sc_sed", "torch", "scvi-tools", "anndata"} <= set(doc["versions"])


def test_round_trip_restores_everything(trained, saved):
    model, _ = trained
    loaded = sc_sed.SEDModel.load(saved)
    assert loaded.autoencoder_trained_ and loaded.diffusion_trained_ and loaded.is_trained_
    for key in ("train_indices_", "validation_indices_", "test_indices_"):
        got, want = getattr(loaded, key), getattr(model, key)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    np.testing.assert_array_equal(loaded.train_condition_codes_, model.train_condition_codes_)
    state, ref = loaded.module.state_dict(), model.module.state_dict()
    assert all(torch.equal(state[k], ref[k].cpu()) for k in ref)
    mapping = loaded.registry_["field_registries"]["labels"]["state_registry"]
    want = model.registry_["field_registries"]["labels"]["state_registry"]
    assert mapping["categorical_mapping"].dtype == want["categorical_mapping"].dtype
    np.testing.assert_array_equal(mapping["categorical_mapping"], want["categorical_mapping"])
    stats = loaded.registry_["field_registries"]["X"]["state_registry"]["sc_sed_stats"]
    want = model.registry_["field_registries"]["X"]["state_registry"]["sc_sed_stats"]
    assert stats.keys() == want.keys() and stats["seen"].dtype == bool
    for key, value in want.items():
        assert type(stats[key]) is type(value) and np.array_equal(stats[key], value)
    assert set(loaded.history) == set(model.history)
    for name, frame in model.history.items():
        np.testing.assert_array_equal(loaded.history[name].to_numpy(), frame.to_numpy())
    assert _same_generation(model, loaded)


def test_codec_round_trips_numpy_exactly():
    value = {
        "a": np.array(["x", "y"], dtype=object),
        "b": np.arange(6, dtype=np.int32).reshape(2, 3),
        "c": np.array([0.1, np.nan, np.inf], dtype=np.float32),
        "d": np.float64(1 / 3),
        "e": (1, "two", np.int64(3)),
        "f": np.array([True, False]),
        "g": np.array(["u", "vv"]),
        "h": [None, 1.5, float("nan")],
    }
    back = decode(json.loads(json.dumps(encode(value))))
    for key in ("a", "b", "c", "f", "g"):
        assert back[key].dtype == value[key].dtype and back[key].shape == value[key].shape
        np.testing.assert_array_equal(back[key], value[key])
    assert type(back["d"]) is np.float64 and back["d"] == value["d"]
    assert back["e"] == value["e"] and type(back["e"][2]) is np.int64
    with pytest.raises(CodecError, match="cannot store"):
        encode({"x": object()})
    with pytest.raises(CodecError, match="unsupported dtype"):
        decode({"__ndarray__": "V8", "shape": [1], "data": [0]})
    with pytest.raises(CodecError, match="implausibly wide"):
        decode({"__ndarray__": "<U100000", "shape": [1], "data": ["x"]})


# -- nothing in a folder can run code -----------------------------------------------------------
def _payload_variants(path, marker):
    blob = pickle.dumps(_Payload(marker))
    original = path.read_bytes()
    yield blob  # the whole file is a pickle
    yield original + blob  # hidden after a genuine file
    yield blob + original


def test_payload_is_live(tmp_path):
    # the payload would indeed run when unpickled (so the tests below can fail)
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("key", ["model", "tensors", "meta", "adata"])
def test_pickle_payload_in_any_file_never_runs(trained, tmp_path, key):
    model, _ = trained
    folder = tmp_path / "m"
    model.save(folder, save_anndata=True)
    marker = tmp_path / "PWNED"
    target = folder / file_names(None)[key]
    for content in list(_payload_variants(target, marker)):
        target.write_bytes(content)
        try:
            sc_sed.SEDModel.load(folder)
        except ModelFileError as err:
            assert target.name in str(err)
        assert not marker.exists()


def test_legacy_pickle_folder_is_refused_without_unpickling(tmp_path, capsys):
    folder = tmp_path / "legacy"
    folder.mkdir()
    marker = tmp_path / "PWNED"
    (folder / "model.pt").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelFileError, match="convert_legacy_save"):
        sc_sed.SEDModel.load(folder)
    rc = sc_sed.cli.main(["generate", str(folder), "--out", str(tmp_path / "x.h5ad")])
    assert rc == 1 and "convert_legacy_save" in capsys.readouterr().err
    assert not marker.exists()


def test_convert_legacy_save(trained, tmp_path):
    from scvi.model.base import BaseModelClass

    model, _ = trained
    BaseModelClass.save(model, str(tmp_path / "old"))  # scvi-tools' pickle format
    with pytest.raises(ModelFileError, match="pickle"):
        sc_sed.SEDModel.load(tmp_path / "old")
    sc_sed.SEDModel.convert_legacy_save(tmp_path / "old", tmp_path / "new")
    assert _same_generation(model, sc_sed.SEDModel.load(tmp_path / "new"))


# -- damaged files --------------------------------------------------------------------------------
DAMAGE = {
    "missing": lambda p: p.unlink(),
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "random": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("key", ["model", "tensors", "meta"])
def test_damaged_file_fails_naming_it(saved, tmp_path, key, damage):
    folder = _copy(saved, tmp_path)
    target = folder / file_names(None)[key]
    DAMAGE[damage](target)
    with pytest.raises(ModelFileError, match=target.name):
        sc_sed.SEDModel.load(folder)


def _edit_json(folder, edit):
    path = folder / "sc_sed_model.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


#: SEDModel's named arguments before the recipe (values as a tiny model's, JSON-encoded)
EARLIER_ARGUMENTS = {
    **{k: v for k, v in TINY.items() if k != "denoiser_widths"},
    "denoiser_widths": {"__tuple__": list(TINY["denoiser_widths"])},
    "n_memory": 4,
    "index_head": "factorised",
    "block_size": None,
    "value_likelihood": "auto",
    "max_nonzero": None,
    "on_long_rows": "error",
    "mask_unseen_features": True,
    "kl_weight": 1e-6,
    "cond_dropout": 0.1,
}


def _save_as_earlier_version(tmp_path, adata, flags: dict, drop: tuple = ()):
    """Save a model built with ``flags``, its file rewritten in the earlier argument layout.

    The earlier layout held every argument in ``non_kwargs`` (the research flags too, or,
    for files from before a flag existed, not at all: ``drop``) and no ``preset``.
    """
    model = sc_sed.SEDModel(adata, index_head="factorised", **flags, **TINY)
    model.save(tmp_path / "m")

    def to_earlier(doc):
        non_kwargs = {**EARLIER_ARGUMENTS, **flags}
        doc["init_params"] = {
            "non_kwargs": {k: v for k, v in non_kwargs.items() if k not in drop},
            "kwargs": {"module_kwargs": {}},
        }

    _edit_json(tmp_path / "m", to_earlier)
    return model


def _same_module(model, loaded):
    saved_state = model.module.state_dict()
    assert saved_state.keys() == loaded.module.state_dict().keys()
    for name, tensor in loaded.module.state_dict().items():
        torch.testing.assert_close(tensor, saved_state[name], rtol=0, atol=0)


def test_model_file_with_the_earlier_research_flags_loads_as_built(tmp_path):
    """A file naming the retired SEDModel flags rebuilds the module those flags built."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    flags = {
        "hazard_init": False,
        "current_block_hazard": False,
        "encoder_size_features": True,
        "n_encoder_pcs": 4,
        "context_width": 0,
        "value_latent_term": "none",
    }
    model = _save_as_earlier_version(tmp_path, adata, flags)
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)  # strict: every tensor matches
    _same_module(model, loaded)
    assert loaded.module.encoder.size_features is True
    assert loaded.module.encoder.spectral.n_components == 4
    assert loaded.module.decoder.index_head.context_width == 0
    assert loaded.module.decoder.index_head.current_block_hazard is False
    assert loaded.module.decoder.value_head.feature_bias is None
    # saved again, it is written in the current layout and loads the same
    loaded.save(tmp_path / "again")
    _same_module(model, sc_sed.SEDModel.load(tmp_path / "again", adata=adata))


def test_model_file_from_before_the_flags_loads_with_their_earlier_values(tmp_path):
    """A file that does not name a flag was built before it existed: with its old value."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    earlier = {
        "hazard_init": False,
        "current_block_hazard": False,
        "n_encoder_pcs": 0,
        "context_width": 0,
        "value_latent_term": "none",
    }
    model = _save_as_earlier_version(tmp_path, adata, earlier, drop=tuple(earlier))
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    _same_module(model, loaded)
    assert loaded.module.encoder.spectral is None
    assert loaded.module.decoder.index_head.current_block_hazard is False
    assert loaded.recipe_["preset"] == "gpu"  # the earlier training budgets


def test_model_file_without_denoiser_widths_loads_with_the_earlier_fixed_widths(tmp_path):
    """Files written before the widths followed the latent were built at 512-512-256-128."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, preset="cpu", n_hidden=16, n_latent=4, n_heads=2)
    assert model.recipe_["denoiser_widths"] == (32, 32, 16, 8)  # this version's rule
    earlier = sc_sed.SEDModel(
        adata, preset="cpu", n_hidden=16, n_latent=4, n_heads=2,
        denoiser_widths=(512, 512, 256, 128),
    )  # fmt: skip
    earlier.save(tmp_path / "m")

    def drop_widths(doc):  # as the recipe's first version wrote it
        doc["init_params"]["kwargs"]["module_kwargs"].pop("denoiser_widths")

    _edit_json(tmp_path / "m", drop_widths)
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)  # strict: every tensor matches
    _same_module(earlier, loaded)
    assert loaded.recipe_["denoiser_widths"] == (512, 512, 256, 128)


def test_saved_model_keeps_its_recipe_on_any_device(tmp_path):
    """The chosen sizes are written explicitly, so loading never re-chooses them."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, preset="cpu")
    assert model.recipe_["n_hidden"] == sc_sed.model.PRESETS["cpu"].n_hidden
    model.save(tmp_path / "m")

    def claim_gpu(doc):  # a file from a GPU machine names the recipe it used
        doc["init_params"]["non_kwargs"]["preset"] = "gpu"

    _edit_json(tmp_path / "m", claim_gpu)
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    _same_module(model, loaded)
    assert loaded.recipe_["n_hidden"] == model.recipe_["n_hidden"]


def test_encoder_size_features_survive_save_and_load(tmp_path):
    """The opt-in size inputs are rebuilt on load: same head shape, same weights."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, encoder_size_features=True, n_encoder_pcs=4, **TINY)
    assert model.module.encoder.head.in_features == TINY["n_hidden"] + 2 + 4
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    assert loaded.module.encoder.size_features is True
    saved_state = model.module.state_dict()
    for name, tensor in loaded.module.state_dict().items():
        torch.testing.assert_close(tensor, saved_state[name], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format_version=99), "format version 99"),
        (lambda d: d.update(format="other"), "not an sc_sed model file"),
        (lambda d: d.pop("registry"), "missing keys \\['registry'\\]"),
        (lambda d: d.update(extra=1), "unknown keys \\['extra'\\]"),
        (lambda d: d["attributes"].update(diffusion_trained_="yes"), "diffusion_trained_"),
        (lambda d: d["attributes"].update(extra_={"a": 1}), "extra_"),
        (lambda d: d["attributes"].update(adata="x"), "attributes/adata"),
        (lambda d: d["init_params"]["non_kwargs"].update(evil=1), "evil"),
        (lambda d: d["init_params"]["non_kwargs"].update(n_hidden=48), "n_hidden|shape"),
        (lambda d: d["registry"].update(setup_method_name="eval"), "setup_method_name"),
        (lambda d: d["attributes"].update(train_indices_=[1, 2]), "train_indices_"),
        (lambda d: d["history"].update(x={"index": 1}), "history/x"),
    ],
)
def test_json_not_matching_schema_fails(saved, tmp_path, edit, match):
    folder = _copy(saved, tmp_path)
    _edit_json(folder, edit)
    with pytest.raises(ModelFileError, match=match):
        sc_sed.SEDModel.load(folder)


def test_wrong_tensor_shape_or_missing_tensor_fails(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    path = folder / "sc_sed_tensors.safetensors"
    tensors = load_file(path)
    key = "module.diffusion.latent_mean"
    save_file({**tensors, key: torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="latent_mean.*shape"):
        sc_sed.SEDModel.load(folder)
    save_file({k: v for k, v in tensors.items() if k != key}, path)
    with pytest.raises(ModelFileError, match="missing tensors"):
        sc_sed.SEDModel.load(folder)
    save_file({**tensors, "train_condition_codes": tensors["train_condition_codes"] + 50}, path)
    with pytest.raises(ModelFileError, match="train_condition_codes"):
        sc_sed.SEDModel.load(folder)


def test_missing_folder_fails(tmp_path):
    with pytest.raises(ModelFileError, match="No model folder"):
        sc_sed.SEDModel.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="sc_sed_model.json is missing"):
        sc_sed.SEDModel.load(tmp_path / "empty")


# -- save ---------------------------------------------------------------------------------------
def test_save_refuses_existing_folder_and_overwrite_removes_stale_files(trained, tmp_path):
    model, _ = trained
    folder = tmp_path / "m"
    model.save(folder, save_anndata=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists"):
        model.save(folder)
    model.save(folder, overwrite=True)
    assert not (folder / "adata.h5ad").exists()  # an earlier save's data does not survive
    assert (folder / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folders left


def test_save_is_atomic(trained, tmp_path, monkeypatch):
    from sc_sed.model import _io

    model, _ = trained
    folder = tmp_path / "m"
    model.save(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(_io, "_write_metadata", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(folder, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_prefixes_share_a_folder(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m", prefix="a_")
    model.save(tmp_path / "m", prefix="b_", overwrite=True)
    assert (tmp_path / "m" / "a_sc_sed_model.json").exists()
    assert _same_generation(model, sc_sed.SEDModel.load(tmp_path / "m", prefix="a_"))


# -- load with an AnnData -----------------------------------------------------------------------
def test_load_with_saved_anndata(trained, tmp_path):
    model, adata = trained
    model.save(tmp_path / "m", save_anndata=True)
    loaded = sc_sed.SEDModel.load(tmp_path / "m")
    assert loaded.adata is not None and loaded.adata.n_obs == adata.n_obs
    assert sc_sed.SEDModel.load(tmp_path / "m", adata=False).adata is None


def test_load_with_other_var_names_fails(trained, saved):
    _, adata = trained
    other = adata.copy()
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="differ from the training features.*position 0"):
        sc_sed.SEDModel.load(saved, adata=other)
    with pytest.raises(ValueError, match="29 features"):
        sc_sed.SEDModel.load(saved, adata=adata[:, 1:].copy())


def test_load_with_unknown_category_fails(trained, saved):
    _, adata = trained
    other = adata.copy()
    other.obs["cell_type"] = other.obs["cell_type"].cat.rename_categories(lambda c: f"new_{c}")
    with pytest.raises(ValueError, match="new_"):
        sc_sed.SEDModel.load(saved, adata=other)


def test_mudata_model_round_trip(tmp_path):
    from mudata import MuData

    from .test_mudata import _mdata

    md = _mdata()
    sc_sed.SEDModel.setup_mudata(md, modalities=["rna", "atac"], layer="counts")
    model = sc_sed.SEDModel(md, **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=32, **FIT)
    model.save(tmp_path / "m", save_anndata=True)
    assert (tmp_path / "m" / "mdata.h5mu").exists()
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=False)
    out = loaded.generate(5, **GEN)
    assert isinstance(out, MuData) and list(out.mod) == ["rna", "atac"]
    ref = model.generate(5, **GEN)
    for mod in ("rna", "atac"):
        assert (out[mod].X != ref[mod].X).nnz == 0
    with_data = sc_sed.SEDModel.load(tmp_path / "m")
    assert isinstance(with_data.adata, MuData)
    md2 = _mdata()
    md2.mod["atac"].var_names = [f"x{i}" for i in range(md2["atac"].n_vars)]
    with pytest.raises(ValueError, match="mdata.mod\\['atac'\\].var_names"):
        sc_sed.SEDModel.load(tmp_path / "m", adata=md2)


def test_index_context_rank_reaches_the_head_and_survives_save_and_load(tmp_path):
    """``context_rank`` (a module argument) sets the factorised head's per-feature term."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, index_head="factorised", context_width=0, context_rank=5, **TINY)
    head = model.module.decoder.index_head
    assert head.context_offset.shape[-1] == head.context_rank.out_features == 5
    with torch.no_grad():
        head.context_offset.normal_()
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    assert loaded.module.decoder.index_head.context_offset.shape[-1] == 5
    torch.testing.assert_close(
        loaded.module.decoder.index_head.context_offset, head.context_offset, rtol=0, atol=0
    )


@pytest.mark.parametrize("index_head", ["flat", "factorised"])
def test_index_context_width_survives_save_and_load(tmp_path, index_head):
    """The index head's hidden context layer (a module argument) is rebuilt on load."""
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, index_head=index_head, context_width=7, **TINY)
    assert model.module.decoder.index_head.context_width == 7
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=adata)
    assert loaded.module.decoder.index_head.context_width == 7
    saved_state = model.module.state_dict()
    for name, tensor in loaded.module.state_dict().items():
        torch.testing.assert_close(tensor, saved_state[name], rtol=0, atol=0)
