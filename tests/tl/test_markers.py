from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_sed.tl
from sc_sed.tl._markers import _matched_rows, _split_halves

N_MARKERS = 10  # up-regulated genes per group; the tests compare this many top markers


def make_marker_counts(
    n_cells: int = 300,
    n_genes: int = 100,
    *,
    n_groups: int = 3,
    seed: int = 0,
    shuffle: bool = False,
    dense: bool = False,
) -> ad.AnnData:
    """Poisson counts; group g up-regulates genes [10g, 10g + 10) four-fold (``shuffle``: labels permuted)."""
    base = np.random.default_rng(7).normal(0.0, 1.0, n_genes)
    up = np.zeros((n_groups, n_genes))
    for g in range(n_groups):
        up[g, g * N_MARKERS : (g + 1) * N_MARKERS] = np.log(4.0)
    rng = np.random.default_rng(seed)
    groups = rng.integers(n_groups, size=n_cells)
    counts = rng.poisson(np.exp(base + up[groups])).astype(np.float32)
    labels = rng.permutation(groups) if shuffle else groups
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical([f"type{g}" for g in labels])},
        index=[f"s{seed}_{i}" for i in range(n_cells)],
    )
    X = counts if dense else sparse.csr_matrix(counts)
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)]))


def _overall(df: pd.DataFrame, metric: str) -> tuple[float, float]:
    row = df[(df["metric"] == metric) & (df["group"] == "all")].iloc[0]
    return row["value"], row["split_half"]


@pytest.fixture(scope="module")
def real():
    return make_marker_counts(seed=1)


@pytest.fixture(scope="module")
def same_df(real):
    return sc_sed.tl.marker_fidelity(real, make_marker_counts(seed=2), "cell_type", n_top=N_MARKERS)


def test_table_layout(same_df):
    assert list(same_df.columns) == ["metric", "group", "value", "split_half", "better", "ideal"]
    assert list(same_df["group"].unique()) == ["all", "type0", "type1", "type2"]
    assert set(same_df["metric"]) == {"logfc_pearson", "marker_precision"}
    assert (same_df["better"] == "higher").all() and (same_df["ideal"] == 1.0).all()
    assert same_df.attrs["sc_sed"]["n_top"] == N_MARKERS


def test_shuffled_labels_score_far_below_real_halves(real):
    shuffled = make_marker_counts(seed=3, shuffle=True)
    df = sc_sed.tl.marker_fidelity(real, shuffled, "cell_type", n_top=N_MARKERS)
    for metric in ("logfc_pearson", "marker_precision"):
        value, half = _overall(df, metric)
        assert half > 0.8, metric  # the generator's markers are clear in half the cells
        assert value < half - 0.4, metric
    per_group = df[(df["metric"] == "marker_precision") & (df["group"] != "all")]
    assert (per_group["value"] < per_group["split_half"]).all()


def test_same_generator_scores_like_real_halves(same_df):
    for metric in ("logfc_pearson", "marker_precision"):
        value, half = _overall(same_df, metric)
        # synthetic rows are drawn per group to a half's size: same noise as the reference
        assert abs(value - half) < 0.05, metric
    assert np.isfinite(same_df["value"]).all() and np.isfinite(same_df["split_half"]).all()


def test_inputs_unchanged():
    real = make_marker_counts(seed=1, dense=True)
    synth = make_marker_counts(seed=2)
    before = {
        name: (a.X.copy(), a.obs.copy(), a.var.copy()) for name, a in (("r", real), ("s", synth))
    }
    sc_sed.tl.marker_fidelity(real, synth, "cell_type", n_top=N_MARKERS)
    for name, a in (("r", real), ("s", synth)):
        X, obs, var = before[name]
        now = a.X.toarray() if sparse.issparse(a.X) else a.X
        np.testing.assert_array_equal(now, X.toarray() if sparse.issparse(X) else X)
        pd.testing.assert_frame_equal(a.obs, obs)
        pd.testing.assert_frame_equal(a.var, var)
        assert len(a.uns) == 0 and len(a.layers) == 0


def test_group_missing_from_synth_is_nan_not_error(real, caplog):
    synth = make_marker_counts(seed=2)
    synth = synth[synth.obs["cell_type"] != "type2"].copy()
    with caplog.at_level(logging.WARNING, logger="sc_sed.tl._markers"):
        df = sc_sed.tl.marker_fidelity(real, synth, "cell_type", n_top=N_MARKERS)
    missing = df[df["group"] == "type2"]
    assert missing["value"].isna().all() and np.isfinite(missing["split_half"]).all()
    assert "'type2' in synth" in caplog.text and "absent" in caplog.text
    kept = df[df["group"].isin(["all", "type0", "type1"])]
    assert np.isfinite(kept["value"]).all()


def test_tiny_group_is_nan(real):
    synth = make_marker_counts(seed=2)
    labels = synth.obs["cell_type"].astype(str).to_numpy()
    labels[np.flatnonzero(labels == "type1")[1:]] = "type0"  # one type1 cell left
    synth.obs["cell_type"] = pd.Categorical(labels)
    df = sc_sed.tl.marker_fidelity(real, synth, "cell_type", n_top=N_MARKERS)
    assert df.loc[df["group"] == "type1", "value"].isna().all()
    assert np.isfinite(df.loc[df["group"] == "type0", "value"]).all()


def test_split_halves_are_stratified_and_seeded():
    labels = np.array(["a"] * 7 + ["b"] * 4 + [None] * 3, dtype=object)
    a, b = _split_halves(labels, np.random.default_rng(0))
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == len(labels)
    for lab in ("a", "b", None):
        n_a, n_b = np.sum(labels[a] == lab), np.sum(labels[b] == lab)
        assert abs(n_a - n_b) <= 1
    np.testing.assert_array_equal(_split_halves(labels, np.random.default_rng(0))[0], a)
    others = [_split_halves(labels, np.random.default_rng(s))[0] for s in range(1, 5)]
    assert any(not np.array_equal(other, a) for other in others)


def test_synthetic_rows_matched_to_a_half_per_group():
    synth = np.array(["a"] * 10 + ["b"] * 2 + ["c"] * 5 + [None] * 4, dtype=object)
    half = np.array(["a"] * 3 + ["b"] * 4 + [None] * 1, dtype=object)
    rows = _matched_rows(synth, half, np.random.default_rng(0))
    assert len(np.unique(rows)) == len(rows)
    got = pd.Series(synth[rows]).value_counts(dropna=False).to_dict()
    assert got == {"a": 3, "b": 2, None: 1}  # "c" is not in the half; "b" has only 2 rows


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n_top": 0}, "n_top"), ({"method": "x"}, "method")]
)
def test_bad_arguments(real, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sc_sed.tl.marker_fidelity(real, real, "cell_type", **kwargs)


def test_missing_groupby_column(real):
    with pytest.raises(KeyError, match="nope"):
        sc_sed.tl.marker_fidelity(real, real, "nope")


def test_evaluate_adds_marker_rows(real):
    synth = make_marker_counts(seed=2)
    kw = {
        "groupby": "cell_type",
        "metrics": [
            "scc",
            "logfc_pearson",
            "logfc_pearson_split_half",
            "marker_precision",
            "marker_precision_split_half",
        ],
    }
    df = sc_sed.tl.evaluate(real, synth, n_markers=N_MARKERS, **kw)
    marker_rows = df[df["metric"].str.contains("logfc|marker")]
    assert set(marker_rows["group"]) == {"all", "type0", "type1", "type2"}
    assert len(marker_rows) == 4 * 4
    is_ref = marker_rows["metric"].str.endswith("_split_half")
    assert (marker_rows.loc[~is_ref, "better"] == "higher").all()
    assert (marker_rows.loc[is_ref, "better"] == "none").all()
    expected = sc_sed.tl.marker_fidelity(real, synth, "cell_type", n_top=N_MARKERS)
    got = df.set_index(["metric", "group"])["value"]
    for rec in expected.itertuples():
        assert got[(rec.metric, rec.group)] == pytest.approx(rec.value)
        assert got[(rec.metric + "_split_half", rec.group)] == pytest.approx(rec.split_half)
    assert df.attrs["sc_sed"]["n_markers"] == N_MARKERS
    off = sc_sed.tl.evaluate(real, synth, markers=False, **kw)
    assert not off["metric"].str.contains("logfc|marker").any()


def test_evaluate_marker_metrics_need_groupby(real):
    with pytest.raises(ValueError, match="groupby"):
        sc_sed.tl.evaluate(real, real, metrics=["logfc_pearson"])
