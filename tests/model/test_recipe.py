"""The recipe: sizes and budgets chosen from the data and the device; given values win."""

from __future__ import annotations

import inspect
import logging

import pytest

import sc_sed
from sc_sed._defaults import MODULE_DEFAULTS, PRESETS, autoencoder_epochs, diffusion_epochs
from sc_sed.module import LatentDiffusion, SEDModule
from sc_sed.nn import ARDecoder, SetEncoder

from .conftest import FIT, tiny_counts


@pytest.fixture
def adata():
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    return adata


def test_constructor_has_at_most_twelve_named_arguments():
    params = inspect.signature(sc_sed.SEDModel.__init__).parameters
    named = [p for p in params.values() if p.kind != p.VAR_KEYWORD and p.name != "self"]
    assert len(named) <= 12
    assert "%(" not in sc_sed.SEDModel.__doc__


@pytest.mark.parametrize("cls", [SEDModule, ARDecoder, SetEncoder, LatentDiffusion])
def test_lower_layers_take_their_defaults_from_one_place(cls):
    params = inspect.signature(cls.__init__).parameters
    names = {"size_features": "encoder_size_features"}
    if cls is LatentDiffusion:  # the denoiser's own names for the module's settings
        names = {"widths": "denoiser_widths", "dropout_rate": "denoiser_dropout"}
    for name, param in params.items():
        key = names.get(name, name)
        if param.default is not inspect.Parameter.empty and hasattr(MODULE_DEFAULTS, key):
            assert param.default == getattr(MODULE_DEFAULTS, key), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_preset_sizes_build_the_module_and_are_recorded(adata, preset, caplog):
    with caplog.at_level(logging.INFO, logger="sc_sed.model._sed"):
        model = sc_sed.SEDModel(adata, preset=preset)
    table = PRESETS[preset]
    assert model.recipe_["preset"] == preset
    assert model.module.n_latent == table.n_latent == model.recipe_["n_latent"]
    assert model.module.decoder.n_hidden == table.n_hidden
    assert len(model.module.decoder.blocks) == table.n_layers
    assert sum("recipe" in r.message for r in caplog.records) == 1  # logged once


@pytest.mark.parametrize(("preset", "given"), [("cpu", None), ("gpu", None), ("cpu", 8)])
def test_denoiser_widths_follow_the_latent_size(adata, preset, given):
    model = sc_sed.SEDModel(adata, preset=preset, n_latent=given)
    n_latent = given or PRESETS[preset].n_latent
    widths = tuple(m * n_latent for m in (8, 8, 4, 2))
    assert model.recipe_["denoiser_widths"] == widths
    assert model.module.diffusion.denoiser.inp.out_features == widths[0]
    assert model.module.diffusion.denoiser.mid.lin1.out_features == widths[-1]
    assert model.init_params_["kwargs"]["module_kwargs"]["denoiser_widths"] == widths  # saved


def test_given_denoiser_widths_win(adata):
    model = sc_sed.SEDModel(adata, preset="cpu", denoiser_widths=(24, 12))
    assert model.recipe_["denoiser_widths"] == (24, 12)
    assert model.module.diffusion.denoiser.inp.out_features == 24


def test_given_values_win_and_n_ff_follows_n_hidden(adata):
    model = sc_sed.SEDModel(adata, preset="gpu", n_hidden=16, n_heads=2, n_encoder_pcs=3)
    assert model.recipe_["n_hidden"] == 16 and model.recipe_["n_ff"] == 32
    assert model.recipe_["n_latent"] == PRESETS["gpu"].n_latent  # not given: chosen
    assert model.module.encoder.spectral.n_components == 3
    assert sc_sed.SEDModel(adata, n_encoder_pcs=0).module.encoder.spectral is None


def test_encoder_components_are_capped_by_the_data(adata):
    few = adata[:6].copy()
    sc_sed.SEDModel.setup_anndata(few, layer="counts")
    model = sc_sed.SEDModel(few, preset="cpu")
    assert model.recipe_["n_encoder_pcs"] == 5


def test_unknown_preset_is_refused(adata):
    with pytest.raises(ValueError, match="preset must be"):
        sc_sed.SEDModel(adata, preset="fast")


def test_budget_rule_follows_the_table():
    cpu = PRESETS["cpu"]
    assert autoencoder_epochs("cpu", 10) == cpu.autoencoder_steps // 10
    assert autoencoder_epochs("cpu", 1) == 400  # capped
    assert autoencoder_epochs("gpu", 10_000) == 1  # at least one epoch
    small = diffusion_epochs("cpu", cpu.small_data_rows - 1, 32)
    large = diffusion_epochs("cpu", cpu.small_data_rows, 32)
    assert small * 32 >= cpu.small_data_diffusion_steps and large * 32 >= cpu.diffusion_steps
    assert small < large


def test_train_uses_and_records_the_recipe_budget(adata):
    model = sc_sed.SEDModel(adata, preset="cpu", n_hidden=16, n_latent=4, denoiser_widths=(16, 8))
    model.train_autoencoder(1, **FIT)  # batch size from the recipe
    assert model.recipe_["batch_size"] == PRESETS["cpu"].batch_size
    assert model.recipe_["max_epochs"] == 1
    assert model.autoencoder_trained_
