from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_sed.tl


def _values(df: pd.DataFrame, group: str = "all") -> dict[str, float]:
    return df[df["group"] == group].set_index("metric")["value"].to_dict()


@pytest.fixture(scope="module")
def same_df(real, same):
    return sc_sed.tl.evaluate(real, same, groupby="cell_type", train=same)


@pytest.fixture(scope="module")
def shifted_df(real, shifted):
    return sc_sed.tl.evaluate(real, shifted)


def test_table_layout(same_df):
    assert list(same_df.columns) == ["metric", "group", "value", "better", "ideal"]
    assert set(same_df["better"]) <= {"higher", "lower", "closer", "none"}
    assert same_df["value"].dtype == float and same_df["ideal"].dtype == float
    assert set(same_df["group"]) == {"all", "type0", "type1", "type2"}
    assert not same_df.duplicated(["metric", "group"]).any()
    overall = set(same_df.loc[same_df["group"] == "all", "metric"])
    assert {"scc", "mmd", "energy_distance", "wasserstein", "discriminability_auroc"} <= overall
    assert {
        "label_accuracy",
        "memorisation_ratio",
        "n_spurious_features",
        "nnz_per_row_wasserstein",
    } <= overall
    per_group = set(same_df.loc[same_df["group"] == "type1", "metric"])
    assert "label_accuracy" in per_group and "memorisation_ratio" not in per_group
    row = same_df[
        (same_df["metric"] == "discriminability_auroc") & (same_df["group"] == "all")
    ].iloc[0]
    assert row["better"] == "lower" and row["ideal"] == 0.5
    zf = _values(same_df)
    synth_zf = same_df[(same_df["metric"] == "zero_fraction_synth") & (same_df["group"] == "all")]
    assert synth_zf["ideal"].iloc[0] == pytest.approx(zf["zero_fraction_real"])
    assert same_df.attrs["sc_sed"]["n_pcs"] == 30


def test_same_distribution_scores_well(same_df):
    v = _values(same_df)
    assert v["scc"] > 0.95
    assert abs(v["mmd"]) < 0.01
    assert abs(v["energy_distance"]) < 0.1
    assert 0.35 < v["discriminability_auroc"] < 0.65
    assert abs(v["zero_fraction_diff"]) < 0.01
    assert v["detection_rate_pearson"] > 0.9
    assert v["n_spurious_features"] == 0
    assert v["label_accuracy"] > 0.7
    assert v["memorisation_ratio"] < 0.1  # synth is `train` itself here: pure copying


def test_shifted_distribution_scores_badly(same_df, shifted_df):
    good, bad = _values(same_df), _values(shifted_df)
    assert bad["mmd"] > 5 * max(abs(good["mmd"]), 1e-3)
    assert bad["energy_distance"] > 5 * max(abs(good["energy_distance"]), 0.05)
    assert bad["discriminability_auroc"] > 0.85
    assert bad["scc"] < good["scc"]
    assert bad["detection_rate_mae"] > good["detection_rate_mae"]


def test_identical_sets_have_exact_sparsity_agreement(real):
    v = _values(
        sc_sed.tl.evaluate(
            real,
            real,
            metrics=["scc", "zero_fraction_diff", "detection_rate_mae", "nnz_per_row_wasserstein"],
        )
    )
    assert v == {
        "scc": pytest.approx(1.0),
        "zero_fraction_diff": 0.0,
        "detection_rate_mae": 0.0,
        "nnz_per_row_wasserstein": 0.0,
    }


def test_memorisation_ratio_detects_copies(real, same, counts_factory):
    train = counts_factory(300, seed=7, prefix="train")
    copy = train[np.random.default_rng(0).choice(300, 200, replace=False)].copy()
    copy.obs_names = [f"copy{i}" for i in range(copy.n_obs)]
    only = ["memorisation_ratio"]
    copied = _values(sc_sed.tl.evaluate(real, copy, train=train, metrics=only))[
        "memorisation_ratio"
    ]
    fresh = _values(sc_sed.tl.evaluate(real, same, train=train, metrics=only))["memorisation_ratio"]
    assert copied < 0.1
    assert 0.7 < fresh < 1.3


def test_label_accuracy_drops_with_wrong_labels(real, same):
    wrong = same.copy()
    wrong.obs["cell_type"] = wrong.obs["cell_type"].cat.rename_categories(
        lambda c: {"type0": "type1", "type1": "type2", "type2": "type0"}[c]
    )
    df = sc_sed.tl.evaluate(real, wrong, groupby="cell_type", metrics=["label_accuracy"])
    assert _values(df)["label_accuracy"] < 0.3
    assert set(df["group"]) == {"all", "type0", "type1", "type2"}


def test_same_seed_same_table_and_csr_equals_dense(real, same):
    kw = {
        "max_cells": 150,
        "metrics": ["scc", "mmd", "energy_distance", "wasserstein", "zero_fraction_diff"],
    }
    a = sc_sed.tl.evaluate(real, same, seed=3, **kw)
    b = sc_sed.tl.evaluate(real, same, seed=3, **kw)
    pd.testing.assert_frame_equal(a, b)
    dense_real, dense_same = real.copy(), same.copy()
    dense_real.X, dense_same.X = real.X.toarray(), same.X.toarray()
    c = sc_sed.tl.evaluate(dense_real, dense_same, seed=3, **kw)
    np.testing.assert_allclose(a["value"], c["value"], rtol=1e-6, atol=1e-9)


def test_inputs_are_not_modified(real, same):
    before = [
        (ad.X.copy(), ad.obs.copy(), ad.var.copy(), dict(ad.uns), set(ad.obsm))
        for ad in (real, same)
    ]
    sc_sed.tl.evaluate(
        real,
        same,
        groupby="cell_type",
        train=same,
        n_hvg=50,
        metrics=["scc", "mmd", "label_accuracy"],
    )
    for ad, (X, obs, var, uns, obsm) in zip((real, same), before, strict=True):
        assert (ad.X != X).nnz == 0
        pd.testing.assert_frame_equal(ad.obs, obs)
        pd.testing.assert_frame_equal(ad.var, var)
        assert dict(ad.uns) == uns and set(ad.obsm) == obsm


def test_metrics_subset_and_hvg(real, same):
    df = sc_sed.tl.evaluate(real, same, n_hvg=40, n_pcs=10, metrics=["mmd", "scc"])
    assert df["metric"].tolist() == ["scc", "mmd"]
    assert df.attrs["sc_sed"]["n_features_pca"] == 40
    assert df.attrs["sc_sed"]["n_pcs"] == 10


def test_normalize_false_accepts_negative_values(real, same):
    def scaled(adata):
        out = adata.copy()
        out.X = sparse.csr_matrix(np.log1p(out.X.toarray()) - 0.5)
        return out

    df = sc_sed.tl.evaluate(
        scaled(real), scaled(same), normalize=False, n_hvg=30, metrics=["scc", "mmd"]
    )
    v = _values(df)
    assert v["scc"] > 0.95 and abs(v["mmd"]) < 0.02


def test_layer_is_used(real, same):
    r, s = real.copy(), same.copy()
    r.layers["counts"], s.layers["counts"] = r.X.copy(), s.X.copy()
    r.X = sparse.csr_matrix(r.shape)  # garbage in X must be ignored
    df = sc_sed.tl.evaluate(r, s, layer="counts", metrics=["zero_fraction_diff"])
    assert abs(df["value"].iloc[0]) < 0.01


def test_align_uses_shared_features_with_warning(real, same, caplog):
    synth = same[:, 10:].copy()
    with caplog.at_level(logging.WARNING, logger="sc_sed"):
        df = sc_sed.tl.evaluate(real, synth, align=True, metrics=["n_spurious_features", "scc"])
    assert "110 shared features" in caplog.text
    assert _values(df)["scc"] > 0.95


def test_feature_order_is_aligned_silently(real, same):
    shuffled = same[:, np.random.default_rng(0).permutation(same.n_vars)].copy()
    a = sc_sed.tl.evaluate(real, same, metrics=["scc", "detection_rate_mae"])
    b = sc_sed.tl.evaluate(real, shuffled, metrics=["scc", "detection_rate_mae"])
    np.testing.assert_allclose(a["value"], b["value"])


def test_max_cells_subsampling_is_fast_and_bounded(counts_factory):
    big_real, big_synth = (
        counts_factory(1500, seed=11, prefix="r"),
        counts_factory(1500, seed=12, prefix="s"),
    )
    df = sc_sed.tl.evaluate(
        big_real, big_synth, max_cells=200, metrics=["mmd", "discriminability_auroc"]
    )
    assert df.attrs["sc_sed"]["max_cells"] == 200
    assert abs(_values(df)["mmd"]) < 0.02


def test_overlap_with_train_warns(real, caplog):
    with caplog.at_level(logging.WARNING, logger="sc_sed"):
        sc_sed.tl.evaluate(real, real[:50].copy(), train=real, metrics=["n_spurious_features"])
    assert "shares 300 obs_names with `train`" in caplog.text


def test_group_rows_match_evaluating_the_group_alone(real, same, same_df):
    linear = ["scc", "zero_fraction_diff", "detection_rate_pearson", "nnz_per_row_wasserstein"]
    is_type2 = real.obs["cell_type"] == "type2"
    alone = sc_sed.tl.evaluate(
        real[is_type2].copy(), same[same.obs["cell_type"] == "type2"].copy(), metrics=linear
    )
    grouped = _values(same_df, "type2")
    for metric in linear:
        assert grouped[metric] == pytest.approx(_values(alone)[metric])
