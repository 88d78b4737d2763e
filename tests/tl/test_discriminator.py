from __future__ import annotations

import copy

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_sed.tl

FAST = {"n_pcs": 5, "n_folds": 3, "n_repeats": 2}


def _top(df: pd.DataFrame, group: str = "all") -> str:
    return df[df["group"] == group].iloc[0]["feature"]


def _auroc(df: pd.DataFrame, group: str = "all", key: str = "all_features") -> float:
    return df.attrs["sc_sed"]["auroc"][group][key]


def test_row_summaries_known_values_sparse_and_dense():
    X = np.array([[3.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    dense = sc_sed.tl.row_summaries(X, n_top=2)
    sp = sc_sed.tl.row_summaries(sparse.csr_matrix(X), n_top=2)
    pd.testing.assert_frame_equal(dense, sp)
    np.testing.assert_allclose(dense["log_library_size"], np.log1p([4, 0, 4]))
    np.testing.assert_allclose(dense["log_n_detected"], np.log1p([2, 0, 4]))
    np.testing.assert_allclose(dense["top2_fraction"], [1.0, 0.0, 0.5])


def _library_pair(counts_factory):
    """Synthetic rows are real-distributed counts tripled: only the library size differs."""
    real = counts_factory(400, 60, seed=1, prefix="r")
    synth = counts_factory(400, 60, seed=2, prefix="s")
    synth.X = synth.X * 3
    return real, synth


def test_library_size_alone_is_found(counts_factory):
    real, synth = _library_pair(counts_factory)
    df = sc_sed.tl.discriminator_features(real, synth, **FAST)
    assert _top(df) == "log_library_size"
    lib = df.set_index("feature").loc["log_library_size"]
    assert lib["univariate_auroc"] > 0.85  # synthetic rows are deeper
    assert lib["mean_synth"] - lib["mean_real"] == pytest.approx(np.log(3), abs=0.1)
    # the normalised PCs cannot see a pure depth change; the summaries can
    assert _auroc(df, key="pcs_only") < 0.62 < 0.85 < _auroc(df)
    assert _auroc(df, key="summaries_only") > 0.85


def _direction_pair(n: int = 400, shift: float = 4.0, scale: float = 1.0):
    """Dense data whose PC2 is feature 1; synthetic rows differ in that feature only."""
    sd = np.r_[5.0, 3.0, 2.0, np.ones(9)]
    rng = np.random.default_rng(0)

    def make(prefix, offset):
        x = rng.normal(0, sd, (n, len(sd)))
        x[:, 1] = x[:, 1] * (scale if offset else 1.0) + offset
        adata = ad.AnnData(x.astype(np.float32))
        adata.obs_names = [f"{prefix}{i}" for i in range(n)]
        adata.var_names = [f"f{j}" for j in range(len(sd))]
        return adata

    return make("r", 0.0), make("s", shift or 1e-9)


def test_one_shifted_direction_puts_its_pc_on_top():
    real, synth = _direction_pair()
    df = sc_sed.tl.discriminator_features(real, synth, normalize=False, **FAST)
    assert _top(df) == "PC2"
    table = df.set_index("feature")
    assert abs(table.loc["PC2", "univariate_auroc"] - 0.5) > 0.25
    assert table.loc["PC2", "importance"] > 3 * table.drop(index="PC2")["importance"].max()


def test_wider_spread_along_one_direction_shows_in_spread_auroc_and_trees():
    real, synth = _direction_pair(shift=0.0, scale=2.0)
    tables = {
        clf: sc_sed.tl.discriminator_features(
            real, synth, normalize=False, summaries=False, classifier=clf, **FAST
        )
        for clf in ("gradient_boosting", "logistic")
    }
    pc2 = tables["gradient_boosting"].set_index("feature").loc["PC2"]
    assert pc2["spread_auroc"] > 0.7 and abs(pc2["univariate_auroc"] - 0.5) < 0.1
    assert pc2["sd_synth"] / pc2["sd_real"] == pytest.approx(2.0, rel=0.2)
    assert _top(tables["gradient_boosting"]) == "PC2"
    # a variance difference is invisible to a linear classifier, not to trees
    assert _auroc(tables["logistic"]) < 0.6 < _auroc(tables["gradient_boosting"])


def test_identical_distributions_give_chance_auroc_and_small_importances(real, same):
    for classifier in ("gradient_boosting", "logistic"):
        df = sc_sed.tl.discriminator_features(real, same, classifier=classifier, **FAST)
        for key in ("all_features", "pcs_only", "summaries_only"):
            assert abs(_auroc(df, key=key) - 0.5) < 0.12, (classifier, key)
        assert df["importance"].abs().max() < 0.06, classifier
        assert (df[["univariate_auroc", "spread_auroc"]].sub(0.5).abs() < 0.15).all().all()


def test_groups_are_explained_separately(counts_factory):
    real = counts_factory(600, 60, n_types=2, seed=1, prefix="r")
    synth = counts_factory(600, 60, n_types=2, seed=2, prefix="s")
    deep = (synth.obs["cell_type"] == "type1").to_numpy()
    synth.X = sparse.diags(np.where(deep, 3.0, 1.0)) @ synth.X
    df = sc_sed.tl.discriminator_features(real, synth, groupby="cell_type", **FAST)
    assert list(dict.fromkeys(df["group"])) == ["all", "type0", "type1"]
    assert _top(df, "type1") == "log_library_size" and _auroc(df, "type1") > 0.9
    assert abs(_auroc(df, "type0") - 0.5) < 0.15
    per_group = df.groupby("group", sort=False)["importance"]
    assert (per_group.apply(lambda s: s.is_monotonic_decreasing)).all()
    n_rows = df.attrs["sc_sed"]["n_rows"]
    assert n_rows["type0"]["real"] + n_rows["type1"]["real"] == n_rows["all"]["real"]


def test_without_summaries_only_pcs(real, shifted):
    df = sc_sed.tl.discriminator_features(real, shifted, summaries=False, **FAST)
    assert set(df["kind"]) == {"pc"} and len(df) == FAST["n_pcs"]
    assert np.isnan(_auroc(df, key="summaries_only"))
    assert _auroc(df) == _auroc(df, key="pcs_only") > 0.65


def test_small_group_gets_nan_with_reason(counts_factory, caplog):
    real = counts_factory(200, 40, n_types=2, seed=1, prefix="r")
    synth = counts_factory(200, 40, n_types=2, seed=2, prefix="s")
    synth.obs["cell_type"] = pd.Categorical(["type0"] * 198 + ["type1"] * 2)
    df = sc_sed.tl.discriminator_features(real, synth, groupby="cell_type", **FAST)
    assert df.loc[df["group"] == "type1", "importance"].isna().all()
    assert np.isnan(_auroc(df, "type1"))
    assert "group 'type1'" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_repeats": 0}, ValueError, "n_repeats"),
        ({"n_top": 0}, ValueError, "n_top"),
        ({"classifier": "svm"}, ValueError, "classifier"),
        ({"n_folds": 1}, ValueError, "n_folds"),
        ({"groupby": "missing"}, KeyError, "missing"),
        ({"layer": "nope"}, KeyError, "nope"),
    ],
)
def test_bad_arguments_raise_clear_errors(real, same, kwargs, error, match):
    frozen = copy.deepcopy(real)
    with pytest.raises(error, match=match):
        sc_sed.tl.discriminator_features(real, same, **kwargs)
    assert (frozen.X != real.X).nnz == 0


def test_not_anndata_and_feature_mismatch(real, same):
    with pytest.raises(TypeError, match="AnnData"):
        sc_sed.tl.discriminator_features(real.X, same)
    with pytest.raises(ValueError, match="align=True"):
        sc_sed.tl.discriminator_features(real, same[:, :50])


def _copies(adata: ad.AnnData, seed: int = 0) -> ad.AnnData:
    """A 'generator' that only copies rows of ``adata`` (drawn with replacement)."""
    rng = np.random.default_rng(seed)
    out = adata[rng.integers(0, adata.n_obs, adata.n_obs)].copy()
    out.obs_names = [f"copy{i}" for i in range(out.n_obs)]
    return out


def test_reference_fits_the_space_on_rows_outside_both_sets(counts_factory):
    # Compared with the rows it copied, a copying generator is told apart when the PCA is
    # fitted on half of those rows (they lie farther out along its minor components), and is
    # not when the PCA is fitted on rows of the same population that are in neither set.
    train = counts_factory(300, 400, seed=1, prefix="train")
    fresh = counts_factory(300, 400, seed=5, prefix="fresh")
    copies = _copies(train)
    kw = {"n_pcs": 20, "n_folds": 3, "n_repeats": 1}
    in_sample = sc_sed.tl.discriminator_features(train, copies, **kw)
    outside = sc_sed.tl.discriminator_features(train, copies, reference=fresh, **kw)
    assert _auroc(in_sample) > 0.62
    assert 0.4 < _auroc(outside) < 0.57
    assert outside.attrs["sc_sed"]["reference"] and not in_sample.attrs["sc_sed"]["reference"]
    # every real row is compared when the space comes from the reference
    assert outside.attrs["sc_sed"]["n_rows"]["all"] == {"real": 300, "synth": 300}
    assert in_sample.attrs["sc_sed"]["n_rows"]["all"]["real"] == 150


def test_reference_with_other_features_is_refused(real, same):
    with pytest.raises(ValueError, match="align=True"):
        sc_sed.tl.discriminator_features(real, same, reference=same[:, :50])
