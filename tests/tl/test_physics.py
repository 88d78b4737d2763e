"""Jet observables of sparse detector images and their real-vs-synthetic comparison."""

from __future__ import annotations

import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sc_sed.tl._physics import compare_physics, jet_observables


def events(values, eta, phi, **obs) -> ad.AnnData:
    var = pd.DataFrame({"eta": eta, "phi": phi}, index=[f"px{i}" for i in range(len(eta))])
    X = sp.csr_matrix(np.asarray(values, dtype=np.float32))
    return ad.AnnData(
        X=X, var=var, obs=pd.DataFrame(obs, index=[f"e{i}" for i in range(X.shape[0])])
    )


def test_two_pixel_events_by_hand():
    # event 0: pT 3 at phi 0 and pT 4 at phi pi/2 (eta 0): pt = 5, E = 7, m = sqrt(49 - 25)
    # event 1: pT 1 at eta +1 and at eta -1 (phi 0): pt = 2, pz = 0, m = 2 sinh(1)
    # event 2: one pixel -> massless; event 3: empty
    eta = [0.0, 0.0, 1.0, -1.0]
    phi = [0.0, np.pi / 2, 0.0, 0.0]
    values = [[3, 4, 0, 0], [0, 0, 1, 1], [0, 0, 2.5, 0], [0, 0, 0, 0]]
    obs = jet_observables(events(values, eta, phi))
    assert list(obs.columns) == ["pt", "mass", "n_hits"]
    assert list(obs.index) == ["e0", "e1", "e2", "e3"]
    np.testing.assert_allclose(obs["pt"], [5.0, 2.0, 2.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(obs["mass"], [np.sqrt(24.0), 2 * np.sinh(1.0), 0.0, 0.0], atol=1e-6)
    assert obs["n_hits"].tolist() == [2, 2, 1, 0]


def test_layer_keys_and_input_untouched():
    adata = events([[3, 4]], [0.0, 0.0], [0.0, np.pi / 2])
    adata.var = adata.var.rename(columns={"eta": "y", "phi": "az"})
    adata.layers["e"] = adata.X * 2
    adata.X.data[0] = 0.0  # explicit zero must not count as a hit
    before = adata.X.copy()
    obs = jet_observables(adata, eta_key="y", phi_key="az")
    assert obs["n_hits"].iloc[0] == 1
    assert adata.X.nnz == before.nnz and np.array_equal(adata.X.data, before.data)
    assert jet_observables(adata, layer="e", eta_key="y", phi_key="az")["pt"].iloc[
        0
    ] == pytest.approx(10.0)


def test_never_densifies():
    n_events, n_pixels = 500, 40_000  # dense float64 would be 160 MB
    X = sp.random(n_events, n_pixels, density=0.0005, format="csr", dtype=np.float32, rng=0)
    var = pd.DataFrame({"eta": np.linspace(-1, 1, n_pixels), "phi": np.linspace(-1, 1, n_pixels)})
    adata = ad.AnnData(X=X, var=var.set_index(var.index.astype(str)))
    tracemalloc.start()
    jet_observables(adata)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20e6


def test_bad_input():
    adata = events([[1.0, -2.0]], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        jet_observables(adata)
    good = events([[1.0, 2.0]], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(KeyError, match="'rapidity'"):
        jet_observables(good, eta_key="rapidity")
    with pytest.raises(KeyError, match="counts"):
        jet_observables(good, layer="counts")
    padded = events([[1.0, 2.0]], [0.0, np.nan], [0.0, np.nan])
    with pytest.raises(ValueError, match="finite eta/phi"):
        jet_observables(padded)


@pytest.fixture
def showers():
    from sc_sed.datasets import synthetic_showers

    return synthetic_showers(n_events=200, grid=(8, 8), seed=0)


def test_compare_physics_identical_is_zero(showers):
    df = compare_physics(showers, showers.copy())
    assert list(df.columns) == ["metric", "group", "value", "better", "ideal"]
    assert df["metric"].tolist() == ["pt_wasserstein", "mass_wasserstein", "n_hits_wasserstein"]
    np.testing.assert_allclose(df["value"], 0.0, atol=1e-9)
    assert set(df["better"]) == {"lower"} and set(df["ideal"]) == {0.0}


def test_compare_physics_detects_a_shift(showers):
    scaled = showers.copy()
    scaled.X = scaled.X * 2
    df = compare_physics(showers, scaled).set_index("metric")
    assert df.loc["pt_wasserstein", "value"] > 1.0
    assert df.loc["n_hits_wasserstein", "value"] == 0.0


def test_compare_physics_borrows_coordinates_and_groups(showers):
    from sc_sed.datasets import synthetic_showers

    synth = synthetic_showers(n_events=150, grid=(8, 8), seed=1)
    synth.var = pd.DataFrame(index=synth.var_names)  # a generated AnnData may lack eta/phi
    df = compare_physics(showers, synth, groupby="particle")
    assert df["group"].tolist()[:3] == ["all"] * 3
    assert set(df["group"]) == {"all", "photon", "pion"}
    assert len(df) == 9
    assert (df["value"] >= 0).all()
    with pytest.raises(KeyError, match="groupby"):
        compare_physics(showers, synth, groupby="nope")
