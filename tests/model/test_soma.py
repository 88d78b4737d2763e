"""SEDModel trained from a TileDB-SOMA experiment through scvi-tools' TileDBDataModule."""

from __future__ import annotations

import numpy as np
import pytest

import sc_sed

from .conftest import FIT, TINY, tiny_counts

SKIP = "needs the soma extra: pip install 'sc_sed[soma]' (tiledbsoma, tiledbsoma-ml)"
tiledbsoma = pytest.importorskip("tiledbsoma", reason=SKIP)
pytest.importorskip("tiledbsoma.io", reason=SKIP)
pytest.importorskip("tiledbsoma_ml", reason=SKIP)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A SOMA experiment written locally from a small counts AnnData (raw counts in X)."""
    adata = tiny_counts(n_cells=48)
    adata.X = adata.layers["counts"].astype(np.float32)
    del adata.layers["counts"]
    # batches in an unsorted order of appearance: the codes must still map to the right names
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) % 3 == 0, "run_b", "run_a")
    uri = str(tmp_path_factory.mktemp("soma") / "experiment")
    tiledbsoma.io.from_anndata(uri, adata, measurement_name="RNA")
    return uri, adata


def _datamodule(uri: str):
    from scvi.dataloaders import TileDBDataModule

    exp = tiledbsoma.Experiment.open(uri)
    query = exp.axis_query("RNA")
    return TileDBDataModule(
        query,
        layer_name="data",
        batch_size=16,
        shuffle=True,
        seed=0,
        batch_column_names=["batch"],
        label_keys=["cell_type"],
        train_size=0.75,
        split_seed=0,
        accelerator="cpu",
        device=1,
    )


def test_soma_experiment_trains_both_stages_and_generates(experiment):
    # most of this test's time is tiledbsoma_ml's one-off numba compilation of its readers
    uri, adata = experiment
    dm = _datamodule(uri)
    names = dm.query.var(column_names=["var_id"]).concat().to_pandas()["var_id"]
    registry = sc_sed.SEDModel.setup_datamodule(dm, var_names=names)
    stats = registry["field_registries"]["X"]["state_registry"]["sc_sed_stats"]
    assert stats["n_obs"] == adata.n_obs and stats["is_integer"]
    model = sc_sed.SEDModel(registry=registry, **TINY)
    assert [c.obs_key for c in model._conditions] == ["cell_type", "batch"]
    assert model._conditions[1].categories == ("run_a", "run_b")  # the encoder's codes
    model.train(max_epochs=2, diffusion_max_epochs=2, datamodule=dm, **FIT)
    assert model.autoencoder_trained_ and model.diffusion_trained_
    synth = model.generate(n_cells=10, labels="type_1", covariates={"batch": "run_b"}, seed=0)
    assert synth.shape == (10, adata.n_vars)
    assert list(synth.var_names) == list(adata.var_names)
    assert (synth.obs["cell_type"] == "type_1").all() and (synth.obs["batch"] == "run_b").all()
    assert float(synth.X.sum()) > 0
