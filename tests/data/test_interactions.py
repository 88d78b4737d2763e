"""Interaction tables <-> users × items AnnData."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sc_sed.data._interactions import from_interactions, to_interactions


def assert_canonical(X, dtype=np.float32) -> None:
    assert type(X) is sp.csr_matrix
    assert X.dtype == dtype
    assert X.has_sorted_indices
    assert np.all(X.data != 0)


@pytest.fixture
def str_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": ["bob", "alice", "bob", "carol", "alice"],
            "item": ["x", "y", "z", "x", "x"],
            "rating": [4.0, 5.0, 1.5, 2.0, 3.0],
        }
    )


@pytest.fixture
def int_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": [10, 2, 10, 33],
            "iid": [7, 7, 100, 5],
            "stars": np.array([5, 3, 4, 1], dtype=np.int64),
        }
    )


def test_round_trip_str_ids(str_table):
    before = str_table.copy()
    adata = from_interactions(str_table, user_col="user", item_col="item", value_col="rating")
    assert_canonical(adata.X)
    assert list(adata.obs_names) == ["alice", "bob", "carol"]
    assert list(adata.var_names) == ["x", "y", "z"]
    assert adata.X[adata.obs_names.get_loc("bob"), adata.var_names.get_loc("z")] == 1.5
    back = to_interactions(adata, user_col="user", item_col="item", value_col="rating")
    expected = str_table.sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected)
    pd.testing.assert_frame_equal(str_table, before)


def test_round_trip_int_ids_restores_dtypes(int_table):
    adata = from_interactions(int_table, user_col="uid", item_col="iid", value_col="stars")
    assert list(adata.obs_names) == ["2", "10", "33"]  # numeric order, stored as str
    assert list(adata.var_names) == ["5", "7", "100"]
    back = to_interactions(adata, user_col="uid", item_col="iid", value_col="stars")
    expected = int_table.sort_values(["uid", "iid"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected)


def test_implicit_feedback_and_default_columns(str_table):
    adata = from_interactions(str_table, user_col="user", item_col="item")
    assert set(adata.X.data) == {1.0}
    back = to_interactions(adata)
    assert list(back.columns) == ["user", "item", "value"]
    expected = str_table[["user", "item"]].sort_values(["user", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back[["user", "item"]], expected)


@pytest.mark.parametrize(("rule", "expected"), [("sum", 6.0), ("max", 5.0), ("last", 1.0)])
def test_duplicate_rules(rule, expected):
    df = pd.DataFrame({"u": [1, 1, 1, 2], "i": ["a", "a", "a", "a"], "v": [5.0, 0.0, 1.0, 2.0]})
    adata = from_interactions(df, user_col="u", item_col="i", value_col="v", duplicates=rule)
    assert adata.X[0, 0] == expected
    assert adata.X[1, 0] == 2.0


def test_duplicate_error():
    df = pd.DataFrame({"u": [1, 1], "i": [3, 3]})
    with pytest.raises(ValueError, match="repeat a \\(user, item\\) pair"):
        from_interactions(df, user_col="u", item_col="i", duplicates="error")
    # implicit duplicates with "sum" become counts
    assert from_interactions(df, user_col="u", item_col="i").X[0, 0] == 2.0


def test_item_and_user_metadata(str_table):
    items = pd.DataFrame(
        {"genre": ["pop", "rock", "jazz", "folk"]}, index=["x", "y", "z", "unused"]
    )
    users = pd.DataFrame({"age": [30, 40]}, index=["alice", "bob"])
    adata = from_interactions(
        str_table, user_col="user", item_col="item", item_metadata=items, user_metadata=users
    )
    assert adata.var["genre"].tolist() == ["pop", "rock", "jazz"]
    assert adata.obs.loc["alice", "age"] == 30
    assert np.isnan(adata.obs.loc["carol", "age"])
    assert items.shape == (4, 1)


def test_zero_values_are_not_stored():
    df = pd.DataFrame({"u": ["a", "b"], "i": ["x", "x"], "v": [0.0, 1.0]})
    adata = from_interactions(df, user_col="u", item_col="i", value_col="v")
    assert adata.shape == (2, 1)
    assert adata.X.nnz == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"user_col": "usr", "item_col": "item"}, "user_col='usr'"),
        ({"user_col": "user", "item_col": "item", "value_col": "score"}, "value_col='score'"),
    ],
)
def test_missing_columns(str_table, kwargs, match):
    with pytest.raises(KeyError, match=match):
        from_interactions(str_table, **kwargs)


def test_bad_values_and_ids(str_table):
    bad = str_table.assign(rating=[1.0, np.nan, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="NaN"):
        from_interactions(bad, user_col="user", item_col="item", value_col="rating")
    with pytest.raises(ValueError, match="missing ids"):
        from_interactions(
            str_table.assign(user=[None, "a", "b", "c", "d"]), user_col="user", item_col="item"
        )
    with pytest.raises(TypeError, match="numeric"):
        from_interactions(str_table, user_col="user", item_col="rating", value_col="item")
    with pytest.raises(ValueError, match="duplicates"):
        from_interactions(str_table, user_col="user", item_col="item", duplicates="mean")
    with pytest.raises(ValueError, match="different columns"):
        from_interactions(str_table, user_col="user", item_col="user")
    with pytest.raises(TypeError, match="DataFrame"):
        from_interactions(str_table.to_numpy(), user_col="user", item_col="item")


def test_non_unique_metadata_index(str_table):
    items = pd.DataFrame({"genre": ["a", "b"]}, index=["x", "x"])
    with pytest.raises(ValueError, match="unique"):
        from_interactions(str_table, user_col="user", item_col="item", item_metadata=items)


def test_to_interactions_column_names_must_differ(str_table):
    adata = from_interactions(str_table, user_col="user", item_col="item")
    with pytest.raises(ValueError, match="must differ"):
        to_interactions(adata, user_col="id", item_col="id")
