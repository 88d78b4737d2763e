"""Adapters never wrap, truncate or merge a value or an id, and leave their inputs alone."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from sc_sed.data import (
    from_coo,
    from_dense,
    from_images,
    from_interactions,
    to_images,
    to_interactions,
)


@pytest.mark.parametrize(
    ("values", "dtype", "shown"),
    [
        ([300.0, 1.0], np.int8, "300"),
        ([4.5, 1.0], np.int32, "4.5"),
        ([-1.0, 1.0], np.uint8, "-1"),
        ([1e5, 1.0], np.float16, "100000"),
        ([2049, 1], np.float16, "2049"),  # an integer float16 cannot hold exactly
    ],
)
def test_dtype_that_cannot_hold_a_value_is_refused(values, dtype, shown):
    vals = np.asarray(values)
    dense = np.array([vals])
    df = pd.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "v": vals})
    frozen = (vals.copy(), dense.copy(), df.copy(deep=True))
    calls = [
        lambda: from_coo([0, 1], [0, 1], vals, dtype=dtype),
        lambda: from_dense(dense, dtype=dtype),
        lambda: from_interactions(df, user_col="u", item_col="i", value_col="v", dtype=dtype),
    ]
    if np.all(vals >= 0):
        calls.append(lambda: from_images(np.array([[vals, vals]]), dtype=dtype))
    for call in calls:
        with pytest.raises(ValueError, match=rf"dtype={np.dtype(dtype)} cannot hold .*{shown}"):
            call()
    np.testing.assert_array_equal(vals, frozen[0])
    np.testing.assert_array_equal(dense, frozen[1])
    pd.testing.assert_frame_equal(df, frozen[2])


def test_summed_duplicates_must_fit_the_dtype_too():
    with pytest.raises(ValueError, match="cannot hold `values`: 300"):
        from_coo([0, 0], [0, 0], [200, 100], dtype=np.int8)
    assert from_coo([0, 0], [0, 0], [100, 27], dtype=np.int8).X.data.tolist() == [127]


def test_integer_values_are_kept_exactly():
    big = 2**62 + 1  # not representable in float64
    adata = from_coo([0], [0], np.array([big]), dtype=np.int64)
    assert adata.X.data.tolist() == [big]
    df = pd.DataFrame({"u": [1], "i": [2], "v": np.array([big])})
    out = from_interactions(df, user_col="u", item_col="i", value_col="v", dtype=np.int64)
    assert out.X.data.tolist() == [big]


def test_unsigned_64_bit_ids_stay_distinct_and_integers():
    ids = np.array([2**64 - 1, 2**63, 2**63 + 1], dtype=np.uint64)
    df = pd.DataFrame({"user": ids, "item": ids[::-1], "value": [1.0, 2.0, 3.0]})
    before = df.copy(deep=True)
    adata = from_interactions(df, user_col="user", item_col="item", value_col="value")
    assert adata.n_obs == 3 and adata.n_vars == 3
    assert set(adata.obs_names) == {str(int(i)) for i in ids}
    back = to_interactions(adata)
    assert back["user"].dtype == np.uint64 and back["item"].dtype == np.uint64
    got = {(int(u), int(i)): v for u, i, v in back.itertuples(index=False)}
    assert got == {(int(u), int(i)): v for u, i, v in before.itertuples(index=False)}
    pd.testing.assert_frame_equal(df, before)


def test_python_ints_beyond_64_bits_round_trip():
    df = pd.DataFrame({"u": [2**64 - 1, -1], "i": ["a", "b"], "v": [1.0, 2.0]})
    assert df["u"].dtype == object
    back = to_interactions(from_interactions(df, user_col="u", item_col="i", value_col="v"))
    assert sorted(back["user"].tolist()) == [-1, 2**64 - 1]
    assert all(isinstance(u, int) for u in back["user"])


@pytest.mark.parametrize("ids", [[1, "1"], [1.0, "1.0"], ["a", 2]])
def test_mixed_id_types_are_refused_not_merged(ids):
    df = pd.DataFrame({"u": ids, "i": ["x", "y"], "v": [1.0, 2.0]})
    before = df.copy(deep=True)
    with pytest.raises(TypeError, match="mixes id types"):
        from_interactions(df, user_col="u", item_col="i", value_col="v")
    with pytest.raises(TypeError, match="mixes id types"):
        from_interactions(df.rename(columns={"u": "i", "i": "u"}), user_col="u", item_col="i")
    pd.testing.assert_frame_equal(df, before)


def test_names_that_print_alike_are_refused():
    with pytest.raises(ValueError, match="must be unique"):
        from_dense(np.ones((2, 2)), obs_names=[1, "1"])


def test_two_features_at_one_pixel_are_refused():
    adata = from_images(np.arange(8.0).reshape(2, 2, 2))
    adata.var["row"] = [0, 0, 1, 1]
    adata.var["col"] = [0, 0, 0, 1]  # px_0_0 and px_0_1 both at (0, 0)
    before = copy.deepcopy(adata)
    with pytest.raises(ValueError, match=r"px_0_0', 'px_0_1'\] all sit at pixel \(0, 0\)"):
        to_images(adata)
    pd.testing.assert_frame_equal(adata.var, before.var)
    # by var_names, without row/col columns
    named = from_images(np.ones((1, 1, 2)))
    del named.var["row"], named.var["col"]
    named.var_names = ["px_0_0", "px_00_0"]
    with pytest.raises(ValueError, match="all sit at pixel"):
        to_images(named)


def test_negative_energies_are_refused_before_the_cast():
    with pytest.raises(ValueError, match="negative values"):
        from_images(np.array([[[1.0, -1.0]]]), dtype=np.uint8)
