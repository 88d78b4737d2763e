from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import sc_sed


def _frame(key, values):
    return pd.DataFrame({key: values}, index=pd.Index(np.arange(len(values)), name="epoch"))


@pytest.fixture(scope="module")
def trained():
    adata = sc_sed.datasets.synthetic_counts(
        n_cells=80, n_genes=30, n_types=3, n_markers=4, seed=0, library_size=60.0
    )
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, n_latent=8, n_hidden=32, n_layers=1, n_heads=2)
    model.train(
        max_epochs=3, diffusion_max_epochs=2, batch_size=32, train_size=0.75,
        check_val_every_n_epoch=1, enable_progress_bar=False,
    )  # fmt: skip
    return model


def test_history_plots_both_stages_train_and_validation(trained):
    axs = sc_sed.pl.history(trained, show=False)
    assert [a.get_title() for a in axs] == ["autoencoder", "diffusion"]
    ae, diff = ([line.get_label() for line in a.get_lines()] for a in axs)
    assert ae == ["train", "validation"]
    assert "train" in diff
    x, y = axs[0].get_lines()[0].get_data()
    assert len(x) == 3  # one point per autoencoder epoch
    np.testing.assert_allclose(y, trained.history_["train_loss"]["train_loss"].astype(float))
    assert len(axs[1].get_lines()[0].get_xdata()) == 2


def test_history_on_one_axes_and_given_axes():
    model = SimpleNamespace(history_={
        "train_loss": _frame("train_loss", [5.0, 4.0, 3.0]),
        "train_diffusion_loss": _frame("train_diffusion_loss", [0.9, 0.5]),
    })  # fmt: skip
    _, ax = plt.subplots()
    out = sc_sed.pl.history(model, ax=ax, show=False)
    assert out is ax
    assert [line.get_label() for line in ax.get_lines()] == [
        "autoencoder train", "diffusion train",
    ]  # fmt: skip
    assert ax.get_yscale() == "log"
    _, two = plt.subplots(1, 2)
    assert sc_sed.pl.history(model, axs=two, show=False) == list(two)
    with pytest.raises(ValueError, match="not both"):
        sc_sed.pl.history(model, ax=ax, axs=two)


def test_history_before_training_is_a_clear_error():
    adata = sc_sed.datasets.synthetic_counts(n_cells=20, n_genes=10, n_types=2, n_markers=2, seed=0)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, n_latent=4, n_hidden=16, n_layers=1, n_heads=2)
    with pytest.raises(RuntimeError, match=r"model\.train\(\)"):
        sc_sed.pl.history(model)
    with pytest.raises(RuntimeError, match="no training history"):
        sc_sed.pl.history(SimpleNamespace(history_={}))
