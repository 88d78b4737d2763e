"""benchmarks/recsys.py: readers, the independent-items baseline, and an end-to-end --smoke run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import sparse

from .conftest import load_benchmark

RATINGS = [(1, 10, 4.0), (1, 20, 3.5), (2, 10, 5.0), (3, 30, 0.5)]


def _write_movielens(tmp_path):
    """The same ratings as ratings.csv (header), u.data (tabs) and ratings.dat (``::``)."""
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{i},{r},1\n" for u, i, r in RATINGS))  # fmt: skip
    udata = tmp_path / "u.data"
    udata.write_text("".join(f"{u}\t{i}\t{int(r * 2)}\t1\n" for u, i, r in RATINGS))
    dat = tmp_path / "ratings.dat"
    dat.write_text("".join(f"{u}::{i}::{r}::1\n" for u, i, r in RATINGS))
    return csv, udata, dat


def test_movielens_formats_are_detected(tmp_path):
    data = load_benchmark("_recsys_data")
    csv, udata, dat = _write_movielens(tmp_path)
    a, b, c = (data.read_movielens(p) for p in (csv, udata, dat))
    for x in (a, b, c):
        assert x.shape == (3, 3) and x.X.nnz == len(RATINGS)
    assert list(a.obs_names) == list(b.obs_names) == list(c.obs_names)
    np.testing.assert_array_equal(a.X.toarray() * 2, b.X.toarray())  # u.data: doubled ratings
    np.testing.assert_array_equal(a.X.toarray(), c.X.toarray())
    assert a.X[0, 1] == pytest.approx(3.5)
    bad = tmp_path / "other.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="--table"):
        data.read_movielens(bad)


def test_independent_items_follows_training_marginals():
    data = load_benchmark("_recsys_data")
    import sc_sed

    train = sc_sed.datasets.synthetic_interactions(n_users=60, n_items=40, implicit=False, seed=3)
    X = sparse.csc_matrix(train.X)
    synth = data.independent_items(train, 200, seed=0)
    S = sparse.csc_matrix(synth.X)
    assert synth.shape == (200, train.n_vars) and list(synth.var_names) == list(train.var_names)
    # row lengths are training row lengths; items only ones seen in training
    assert set(S.getnnz(axis=1)) <= set(X.getnnz(axis=1))
    assert np.all(X.getnnz(axis=0)[S.getnnz(axis=0) > 0] > 0)
    # each value is one of that item's training values
    for j in np.flatnonzero(S.getnnz(axis=0)):
        assert set(S[:, j].data) <= set(X[:, j].data)
    # popular items are drawn more often: item counts follow training popularity
    rho = np.corrcoef(X.getnnz(axis=0), S.getnnz(axis=0))[0, 1]
    assert rho > 0.5
    assert (data.independent_items(train, 200, seed=0).X != synth.X).nnz == 0  # seeded


def test_recsys_smoke(tmp_path):
    threads = torch.get_num_threads()
    bench = load_benchmark("recsys")
    result = bench.main(["--smoke", "--seeds", "2", "--baselines", "--out", str(tmp_path)])
    assert torch.get_num_threads() == threads  # the script restores what it pins
    data = json.loads((tmp_path / "recsys_smoke.json").read_text())
    assert (tmp_path / "recsys_smoke.md").read_text().startswith("# SED on smoke")
    assert list(data["summary"]) == [bench.SED, bench.INDEPENDENT, bench.REAL]
    assert data["summary"].keys() == result["summary"].keys()
    assert len(data["records"]) == 2
    for record in data["records"]:
        assert record["n_heldout"] == 24 and record["n_train"] == 96
        sed = record["sed"]
        assert isinstance(sed["value_likelihood_"], str) and sed["recipe_"]
        assert sed["seconds"]["train_autoencoder"] > 0 and sed["seconds"]["train_diffusion"] > 0
        assert record["metrics"][bench.SED]["n_spurious_features"]["value"] == 0
        # the real training users are training rows: memorisation distance 0
        assert record["metrics"][bench.REAL]["memorisation_ratio"]["value"] == 0
        assert set(record["targets"]) == {"scc", "mmd", "discriminability_auroc", "tstr_recall_ratio"}
        for t in record["targets"].values():
            assert t["met"] in (True, False, None)
    ci = data["summary"][bench.SED]["item_popularity_spearman"]["value"]
    assert ci["n"] == 2 and ci["ci_low"] <= ci["mean"] <= ci["ci_high"]
    ref = data["summary"][bench.SED]["item_popularity_spearman"]["reference"]
    assert ref["n"] == 2 and -1 <= ref["mean"] <= 1
    # the mean targets use the SED means and the real-(train) floor
    scc = data["targets_mean"]["scc"]
    floor = data["summary"][bench.REAL]["scc"]["value"]["mean"]
    assert scc["threshold"] == pytest.approx(floor - 0.03)
    assert data["settings"]["recipe"] == "overridden"
