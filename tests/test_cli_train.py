import functools
import json

import pytest

import sc_sed
from sc_sed.cli import main

from .model.conftest import tiny_counts


@pytest.fixture
def h5ad(tmp_path):
    path = tmp_path / "in.h5ad"
    tiny_counts().write_h5ad(path)
    return path


@pytest.fixture
def captured(monkeypatch):
    """Record what `sc-sed train` builds and passes to train, without training or saving."""
    seen = {}

    @functools.wraps(sc_sed.SEDModel.train)  # the CLI reads train's signature
    def fake_train(self, **kwargs):
        seen["model"], seen["train"] = self, kwargs

    monkeypatch.setattr(sc_sed.SEDModel, "train", fake_train)
    monkeypatch.setattr(sc_sed.SEDModel, "save", lambda *a, **k: None)
    return seen


def test_config_and_flags_reach_the_model_and_train(h5ad, tmp_path, captured):
    config = tmp_path / "recipe.json"
    config.write_text(json.dumps({
        "n_layers": 2, "n_heads": 2, "n_hidden": 64, "n_latent": 8, "max_epochs": 7,
        "batch_size": 16, "precision": "32-true",
    }))  # fmt: skip
    rc = main([
        "train", str(h5ad), "--out", str(tmp_path / "m"), "--layer", "counts",
        "--config", str(config), "--n-hidden", "32", "--batch-size", "8", "--epochs", "3",
        "--diffusion-epochs", "2", "--no-progress", "--accelerator", "cpu", "--seed", "1",
    ])  # fmt: skip
    assert rc == 0
    model, train = captured["model"], captured["train"]
    assert model.init_params_["non_kwargs"]["n_layers"] == 2  # from the file
    assert model.init_params_["non_kwargs"]["n_hidden"] == 32  # the flag wins
    assert len(model.module.decoder.blocks) == 2 and model.module.decoder.n_hidden == 32
    assert train == {
        "max_epochs": 3, "diffusion_max_epochs": 2, "batch_size": 8, "precision": "32-true",
        "enable_progress_bar": False, "accelerator": "cpu", "seed": 1,
    }  # fmt: skip


def test_without_config_only_the_given_flags_are_passed(h5ad, tmp_path, captured):
    assert main(["train", str(h5ad), "--out", str(tmp_path / "m"), "--layer", "counts",
                 "--n-layers", "1", "--progress"]) == 0  # fmt: skip
    assert captured["train"] == {"accelerator": "auto", "enable_progress_bar": True}
    assert captured["model"].init_params_["non_kwargs"]["n_layers"] == 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"n_layers": 2, "n_layerz": 3, "max_epoch": 1}', "unknown keys ['max_epoch', 'n_layerz']"),
        ('{"n_layers": 2,', "not valid JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_config_is_a_one_line_error_before_any_work(h5ad, tmp_path, capsys, text, match,
                                                        monkeypatch):  # fmt: skip
    monkeypatch.setattr(sc_sed.SEDModel, "__init__", lambda *a, **k: pytest.fail("built"))
    config = tmp_path / "bad.json"
    config.write_text(text)
    rc = main(["train", str(h5ad), "--out", str(tmp_path / "m"), "--config", str(config)])
    err = capsys.readouterr().err
    assert rc == 1 and match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
