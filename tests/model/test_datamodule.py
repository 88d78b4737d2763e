"""SEDModel trained from a LightningDataModule (the scvi-tools 1.4 ``datamodule=`` path)."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import sc_sed
from sc_sed.data import matrix_stats

from .conftest import FIT, TINY, tiny_counts


class _Rows(Dataset):
    def __init__(self, x: torch.Tensor, labels: torch.Tensor | None):
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict:
        item = {"X": self.x[i]}
        if self.labels is not None:
            item["labels"] = self.labels[i : i + 1]
        return item


class DenseDataModule(pl.LightningDataModule):
    """A minimal scvi-style data module: dicts of a dense ``X`` and ``(rows, 1)`` labels."""

    def __init__(self, x, labels=None, batch_size: int = 16, n_val: int = 8):
        super().__init__()
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        labels = None if labels is None else torch.as_tensor(np.asarray(labels)).long()
        self.train_rows = _Rows(x[n_val:], None if labels is None else labels[n_val:])
        self.val_rows = _Rows(x[:n_val], None if labels is None else labels[:n_val])
        self.batch_size, self.n_val = batch_size, n_val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_rows, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return DataLoader(self.val_rows, batch_size=self.batch_size) if self.n_val else []


@pytest.fixture(scope="module")
def counts():
    adata = tiny_counts()
    return adata, adata.layers["counts"].toarray()


def _labelled(counts):
    adata, x = counts
    codes = adata.obs["cell_type"].cat.codes.to_numpy()
    return DenseDataModule(x, codes), list(adata.obs["cell_type"].cat.categories)


def test_setup_datamodule_streams_the_statistics_of_all_rows(counts):
    adata, x = counts
    dm, categories = _labelled(counts)
    registry = sc_sed.SEDModel.setup_datamodule(
        dm, var_names=adata.var_names, conditions={"labels": categories}
    )
    stats = registry["field_registries"]["X"]["state_registry"]["sc_sed_stats"]
    expected = matrix_stats(x)
    assert stats["n_obs"] == adata.n_obs  # training and validation rows
    assert stats["max_nonzero"] == expected.max_nonzero
    assert stats["is_integer"] and not stats["has_negative"]
    np.testing.assert_array_equal(stats["n_detected"], expected.n_detected)
    assert list(registry["field_registries"]["X"]["state_registry"]["column_names"]) == list(
        adata.var_names
    )


def test_both_stages_train_from_a_datamodule_and_generate(counts):
    adata, _ = counts
    dm, categories = _labelled(counts)
    registry = sc_sed.SEDModel.setup_datamodule(
        dm, var_names=adata.var_names, conditions={"labels": categories}
    )
    model = sc_sed.SEDModel(registry=registry, **TINY)
    model.train(
        max_epochs=2,
        diffusion_max_epochs=2,
        datamodule=dm,
        seed=0,
        check_val_every_n_epoch=1,
        **FIT,
    )
    assert model.autoencoder_trained_ and model.diffusion_trained_
    assert "validation_loss" in model.history_  # the module's validation loader was used
    assert model.train_indices is None  # a data module's rows have no AnnData index
    # the diffusion trained on the encoder means of the training loader's rows
    assert model.train_condition_codes_.shape == (adata.n_obs - dm.n_val, 1)
    synth = model.generate(n_cells=12, labels={categories[0]: 5, categories[1]: 7}, seed=0)
    assert synth.shape == (12, adata.n_vars)
    assert list(synth.var_names) == list(adata.var_names)
    assert synth.obs["labels"].value_counts()[categories[1]] == 7


def test_unconditional_datamodule_model_saves_and_loads(counts, tmp_path):
    adata, x = counts
    dm = DenseDataModule(x, n_val=0)
    model = sc_sed.SEDModel(registry=sc_sed.SEDModel.setup_datamodule(dm), **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, datamodule=dm, **FIT)
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m")
    a = model.generate(n_cells=6, seed=3)
    b = loaded.generate(n_cells=6, seed=3)
    assert list(b.var_names) == [str(i) for i in range(adata.n_vars)]  # no names given
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    # an AnnData with the same features can be encoded by the model, or loaded with it
    named = adata.copy()
    named.X, named.var_names = named.layers["counts"], b.var_names
    with pytest.raises(ValueError, match="has no AnnData"):
        model.get_latent_representation()
    z = model.get_latent_representation(named)
    assert z.shape == (adata.n_obs, TINY["n_latent"])
    with_adata = sc_sed.SEDModel.load(tmp_path / "m", adata=named)
    np.testing.assert_allclose(with_adata.get_latent_representation(), z, rtol=1e-5, atol=1e-6)


def test_scvi_registry_gives_names_and_conditions(counts):
    adata, _ = counts
    dm, categories = _labelled(counts)
    dm.registry = {
        "setup_args": {"labels_key": "cell_type", "batch_key": None},
        "field_registries": {
            "X": {"state_registry": {"column_names": list(adata.var_names)}},
            "labels": {
                "state_registry": {"categorical_mapping": categories, "original_key": "cell_type"}
            },
        },
    }
    model = sc_sed.SEDModel(registry=sc_sed.SEDModel.setup_datamodule(dm), **TINY)
    assert [c.obs_key for c in model._conditions] == ["cell_type"]
    assert list(model.training_var_.index) == list(adata.var_names)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda x: np.where(x > 2, np.nan, x), "NaN"),
        (lambda x: -x, "negative"),
    ],
)
def test_bad_values_are_a_clear_error_at_setup(counts, bad, match):
    _, x = counts
    with pytest.raises(ValueError, match=match):
        sc_sed.SEDModel(registry=sc_sed.SEDModel.setup_datamodule(DenseDataModule(bad(x))))


def test_non_counts_with_a_count_likelihood_is_a_clear_error(counts):
    _, x = counts
    registry = sc_sed.SEDModel.setup_datamodule(DenseDataModule(x * 0.5))
    with pytest.raises(ValueError, match="integer counts"):
        sc_sed.SEDModel(registry=registry, value_likelihood="ztnb")


def test_minibatches_are_checked_during_training(counts):
    _, x = counts
    model = sc_sed.SEDModel(registry=sc_sed.SEDModel.setup_datamodule(DenseDataModule(x)), **TINY)
    with pytest.raises(ValueError, match="negative values"):
        model.train_autoencoder(max_epochs=1, datamodule=DenseDataModule(-x), **FIT)
    with pytest.raises(ValueError, match="features"):
        model.train_autoencoder(max_epochs=1, datamodule=DenseDataModule(x[:, :5]), **FIT)


def test_missing_keys_are_a_clear_error(counts):
    adata, x = counts

    class TupleModule(DenseDataModule):
        def on_before_batch_transfer(self, batch, dataloader_idx):
            return (batch["X"],)

    with pytest.raises(ValueError, match="dicts with a 2-D tensor under 'X'"):
        sc_sed.SEDModel.setup_datamodule(TupleModule(x))
    with pytest.raises(ValueError, match="no 'labels' codes"):
        sc_sed.SEDModel.setup_datamodule(DenseDataModule(x), conditions={"labels": ["a", "b"]})
    codes = np.arange(adata.n_obs) % 3
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 2\)"):
        sc_sed.SEDModel.setup_datamodule(DenseDataModule(x, codes), conditions={"labels": "ab"})
    with pytest.raises(ValueError, match="conditions keys"):
        sc_sed.SEDModel.setup_datamodule(DenseDataModule(x), conditions={"cell_type": ["a"]})


def test_datamodule_and_anndata_are_not_mixed(counts):
    adata, x = counts
    dm = DenseDataModule(x)
    model = sc_sed.SEDModel(registry=sc_sed.SEDModel.setup_datamodule(dm), **TINY)
    with pytest.raises(ValueError, match=r"model.train\(datamodule=dm\)"):
        model.train(max_epochs=1, **FIT)
    adata = adata.copy()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    with pytest.raises(ValueError, match="this model has an AnnData"):
        sc_sed.SEDModel(adata, **TINY).train(max_epochs=1, datamodule=dm, **FIT)


def test_a_model_loaded_without_anndata_says_what_to_pass(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m")
    loaded = sc_sed.SEDModel.load(tmp_path / "m", adata=False)
    with pytest.raises(ValueError, match=r"load it with its AnnData"):
        loaded.train(max_epochs=1, **FIT)
    with pytest.raises(ValueError, match="has no AnnData"):
        loaded.get_latent_representation()
