import numpy as np
import pytest
from mudata import MuData

import sc_sed

from .conftest import FIT, TINY, tiny_counts


def _mdata():
    a = tiny_counts()
    b = tiny_counts(seed=1)
    b = b[:, :12].copy()
    b.obs_names = a.obs_names
    b.var_names = [f"peak_{i}" for i in range(b.n_vars)]
    md = MuData({"rna": a, "atac": b})
    md.obs["cell_type"] = a.obs["cell_type"].values
    return md


def test_mudata_round_trip():
    md = _mdata()
    sc_sed.SEDModel.setup_mudata(
        md, modalities=["rna", "atac"], layer="counts", labels_key="cell_type"
    )
    model = sc_sed.SEDModel(md, **TINY)
    assert model.module.n_features == 30 + 12
    assert model.max_nonzero_ >= int(np.diff(md["rna"].layers["counts"].indptr).max())
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=32, **FIT)
    synth = model.generate(6, n_steps=3, progress_bar=False)
    assert isinstance(synth, MuData)
    assert list(synth.mod) == ["rna", "atac"]
    assert list(synth["rna"].var_names) == list(md["rna"].var_names)
    assert list(synth["atac"].var_names) == list(md["atac"].var_names)
    assert "cell_type" in synth.obs and synth.obs["synthetic"].all()
    assert synth["atac"].layers["counts"].shape == (6, 12)
    lat = model.get_latent_representation()
    assert lat.shape == (md.n_obs, TINY["n_latent"])


def test_mudata_unknown_modality():
    with pytest.raises(KeyError, match="not found in mdata.mod"):
        sc_sed.SEDModel.setup_mudata(_mdata(), modalities=["prot"])


def test_mudata_rejects_missing_labels_with_count():
    md = _mdata()
    labels = md.obs["cell_type"].astype(object).to_numpy()
    labels[:2] = None
    md.obs["cell_type"] = labels
    with pytest.raises(ValueError, match="2 missing value"):
        sc_sed.SEDModel.setup_mudata(md, layer="counts", labels_key="cell_type")
    with pytest.raises(KeyError, match="not a column"):
        sc_sed.SEDModel.setup_mudata(md, layer="counts", labels_key="no_such_column")
