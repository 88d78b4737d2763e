from __future__ import annotations

import copy
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_sed
from sc_sed.tl._interactions import gini, top_pairs
from sc_sed.tl._recommender import HeldOut, item_similarity, recall_ndcg, top_k


@pytest.fixture(scope="module")
def users() -> ad.AnnData:
    """800 users from one generator: the first 400 are 'real', the rest a second draw."""
    return sc_sed.datasets.synthetic_interactions(800, 300, seed=0, mean_items=15)


def _values(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index("metric")[["value", "split_half"]]


def _random_like(adata: ad.AnnData, seed: int = 0) -> ad.AnnData:
    """Same users' numbers of interactions, items drawn uniformly."""
    rng = np.random.default_rng(seed)
    nnz = adata.X.getnnz(axis=1)
    cols = np.concatenate([rng.choice(adata.n_vars, n, replace=False) for n in nnz])
    X = sparse.csr_matrix((np.ones(nnz.sum()), cols, np.r_[0, np.cumsum(nnz)]), adata.shape)
    out = ad.AnnData(X.astype(np.float32))
    out.var_names = adata.var_names
    return out


def _table(rows: list[list[int]], n_items: int, prefix: str) -> ad.AnnData:
    X = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        X[u, items] = 1.0
    adata = ad.AnnData(sparse.csr_matrix(X))
    adata.var_names = [f"i{j}" for j in range(n_items)]
    adata.obs_names = [f"{prefix}{u}" for u in range(len(rows))]
    return adata


def test_second_draw_scores_like_the_split_half_reference(users):
    v = _values(sc_sed.tl.interaction_metrics(users[:400], users[400:]))
    for m in ("item_popularity_spearman", "top_pairs_overlap"):
        assert v.loc[m, "value"] > v.loc[m, "split_half"] - 0.1, m
    for m in ("item_popularity_gini_diff", "user_activity_wasserstein"):
        assert v.loc[m, "value"] < 2 * v.loc[m, "split_half"] + 0.05, m
    assert v.loc["tstr_recall_ratio", "value"] > 0.85
    assert v.loc["tstr_ndcg_ratio", "value"] > 0.85
    assert v.loc["tstr_recall", "split_half"] > 0.2  # the recommender works on this table


def test_random_interactions_rank_far_below_real_data(users):
    real, random = users[:400], _random_like(users[400:])
    v = _values(sc_sed.tl.interaction_metrics(real, random))["value"]
    ref = _values(sc_sed.tl.interaction_metrics(real, users[400:]))["value"]
    assert v["item_popularity_spearman"] < ref["item_popularity_spearman"] - 0.4
    assert v["tstr_recall_ratio"] < 0.5 * ref["tstr_recall_ratio"]
    assert v["item_popularity_gini_diff"] > 5 * ref["item_popularity_gini_diff"]
    assert v["top_pairs_overlap"] < 0.2
    # same activity per user: only the items differ
    assert v["user_activity_wasserstein"] == pytest.approx(ref["user_activity_wasserstein"])


def test_item_knn_on_a_case_computed_by_hand():
    # Users {0,1}, {0,2}, {0}: co-counts [[3,1,1],[1,1,0],[1,0,1]]: cos(0,1) = cos(0,2) = 1/sqrt(3).
    S = item_similarity(sparse.csr_matrix([[1.0, 1, 0], [1, 0, 1], [1, 0, 0]]))
    expected = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]]) / np.sqrt(3)
    np.testing.assert_allclose(S.toarray(), expected)
    # Two item pairs that always go together: knowing one item finds the other at rank 1.
    S = item_similarity(sparse.csr_matrix([[1.0, 1, 0, 0], [0, 0, 1, 1]]))
    held = HeldOut(
        known=sparse.csr_matrix([[1.0, 0, 0, 0], [0, 0, 0, 1]]),
        hidden=sparse.csr_matrix([[0.0, 1, 0, 0], [0, 0, 1, 0]]),
    )
    assert recall_ndcg(S, held, k=2) == (1.0, 1.0)
    wrong = HeldOut(known=held.known, hidden=sparse.csr_matrix([[0.0, 0, 1, 0], [1, 0, 0, 0]]))
    assert recall_ndcg(S, wrong, k=2) == (0.0, 0.0)  # zero-score items are never recommended


def test_known_items_are_never_recommended():
    scores = np.array([[5.0, 4.0, 3.0, 2.0]])
    ranked = top_k(scores, sparse.csr_matrix([[1.0, 0, 1, 0]]), k=3)
    assert ranked.tolist() == [[1, 3, -1]]


def test_perfect_recall_end_to_end_with_train():
    pattern = [[0, 1], [2, 3], [4, 5]]
    real, train = _table(pattern * 2, 6, "r"), _table(pattern * 3, 6, "t")
    v = _values(sc_sed.tl.interaction_metrics(real, train.copy(), train=train, k=2))
    assert v.loc["tstr_recall"].tolist() == [1.0, 1.0]
    assert v.loc["tstr_ndcg"].tolist() == [1.0, 1.0]
    assert v.loc["tstr_recall_ratio", "value"] == 1.0


def test_gini_and_top_pairs_by_hand():
    assert gini(np.array([1, 1, 1])) == 0.0
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    # Pair (0,1) is shared by 3 users, (1,2) by 2, (0,2) by 1; item 3 is the least popular.
    X = sparse.csr_matrix([[1.0, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]])
    assert top_pairs(X, 2, max_items=4).tolist() == [0 * 4 + 1, 1 * 4 + 2]
    assert set(top_pairs(X, 10, max_items=2).tolist()) == {0 * 4 + 1}  # items 0 and 1 only


def test_log_value_ks_sees_heavy_tails(users):
    real, synth = users[:400].copy(), users[400:].copy()
    rng = np.random.default_rng(0)
    real.X.data = np.floor(rng.pareto(1.0, real.X.nnz) * 10 + 1).astype(np.float32)
    synth.X.data = np.ones(synth.X.nnz, dtype=np.float32)
    v = _values(sc_sed.tl.interaction_metrics(real, synth))
    assert v.loc["log_value_ks", "split_half"] < 0.1 < 0.5 < v.loc["log_value_ks", "value"]


def test_inputs_unchanged_seeded_and_dense_equals_sparse(users):
    real, synth = users[:100].copy(), users[400:500].copy()
    real.layers["plays"] = real.X.toarray()
    synth.layers["plays"] = synth.X.copy()
    frozen = copy.deepcopy(real), copy.deepcopy(synth)
    first = sc_sed.tl.interaction_metrics(real, synth, seed=3)
    pd.testing.assert_frame_equal(first, sc_sed.tl.interaction_metrics(real, synth, seed=3))
    dense = sc_sed.tl.interaction_metrics(real, synth, layer="plays", seed=3)
    pd.testing.assert_frame_equal(first, dense)
    for before, after in zip(frozen, (real, synth), strict=True):
        assert (before.X != after.X).nnz == 0
        pd.testing.assert_frame_equal(before.obs, after.obs)
    assert set(first["better"]) <= {"higher", "lower", "closer", "none"}


def test_degenerate_inputs(caplog):
    one_user = _table([[0, 1]], 3, "r")
    with pytest.raises(ValueError, match="at least 4"):
        sc_sed.tl.interaction_metrics(one_user, one_user)
    with pytest.raises(ValueError, match="positive integer"):
        sc_sed.tl.interaction_metrics(one_user, one_user, k=0)
    one_item = _table([[0]] * 6, 1, "r")
    with caplog.at_level(logging.WARNING):
        v = _values(sc_sed.tl.interaction_metrics(one_item, one_item))
    for m in ("item_popularity_spearman", "top_pairs_overlap", "tstr_recall", "tstr_recall_ratio"):
        assert np.isnan(v.loc[m, "value"]) and m in caplog.text, m
    caplog.clear()
    real, zeros = _table([[0, 1], [1, 2], [0, 2], [2, 3]] * 3, 4, "r"), _table([[]] * 8, 4, "s")
    with caplog.at_level(logging.WARNING):
        v = _values(sc_sed.tl.interaction_metrics(real, zeros))
    for m in ("item_popularity_spearman", "log_value_ks", "item_popularity_gini_synth"):
        assert np.isnan(v.loc[m, "value"]) and m in caplog.text, m
    assert v.loc["tstr_recall", "value"] == 0.0 and v.loc["tstr_recall", "split_half"] > 0


def test_evaluate_appends_the_rows_only_when_asked(users):
    real, synth = users[:120], users[400:520]
    kw = {"classifier": "logistic", "n_folds": 2, "n_pcs": 4}
    plain = sc_sed.tl.evaluate(real, synth, **kw)
    assert not plain["metric"].str.startswith(("tstr_", "item_popularity")).any()
    df = sc_sed.tl.evaluate(real, synth, interactions=True, **kw).set_index("metric")
    direct = _values(sc_sed.tl.interaction_metrics(real, synth))
    assert df.loc["tstr_recall", "value"] == direct.loc["tstr_recall", "value"]
    assert df.loc["tstr_recall_split_half", "value"] == direct.loc["tstr_recall", "split_half"]
    assert df.loc["item_popularity_spearman_split_half", "better"] == "none"
    gini_real = df.loc["item_popularity_gini_real", "value"]
    assert df.loc["item_popularity_gini_synth", "ideal"] == gini_real
    assert "tstr_recall_ratio_split_half" not in df.index
    with pytest.raises(ValueError, match="interactions=True"):
        sc_sed.tl.evaluate(real, synth, metrics=["tstr_recall"], **kw)
