"""COO triplets and dense arrays <-> sparse AnnData."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sc_sed.data._coo import from_coo, from_dense, to_coo, to_dense


def assert_canonical(X, dtype=np.float32) -> None:
    assert type(X) is sp.csr_matrix
    assert X.dtype == dtype
    assert X.has_sorted_indices
    assert np.all(X.data != 0)


@pytest.fixture
def triplets():
    rows = np.array([2, 0, 0, 3, 1])
    cols = np.array([1, 4, 0, 2, 3])
    values = np.array([1.5, -2.0, 3.25, 7.0, 0.5], dtype=np.float32)
    return rows, cols, values


def test_from_coo_round_trip(triplets):
    rows, cols, values = triplets
    before = [a.copy() for a in triplets]
    adata = from_coo(rows, cols, values, shape=(5, 6), obs_names=list("abcde"))
    assert_canonical(adata.X)
    assert adata.shape == (5, 6)
    assert list(adata.obs_names) == list("abcde")
    assert list(adata.var_names) == [str(i) for i in range(6)]
    r, c, v = to_coo(adata)
    order = np.lexsort((cols, rows))
    np.testing.assert_array_equal(r, rows[order])
    np.testing.assert_array_equal(c, cols[order])
    np.testing.assert_array_equal(v, values[order])
    again = from_coo(r, c, v, shape=adata.shape)
    assert (again.X != adata.X).nnz == 0
    for a, b in zip(before, triplets, strict=True):
        np.testing.assert_array_equal(a, b)


def test_from_coo_infers_shape_and_drops_zeros():
    adata = from_coo([0, 1, 2], [0, 2, 1], [1.0, 0.0, 2.0])
    assert adata.shape == (3, 3)
    assert adata.X.nnz == 2
    assert_canonical(adata.X)


def test_from_coo_duplicates_sum_and_error():
    rows, cols, values = [0, 0, 1, 1], [1, 1, 0, 0], [1.0, 2.0, 3.0, -3.0]
    adata = from_coo(rows, cols, values)
    assert adata.X[0, 1] == 3.0
    assert adata.X.nnz == 1  # (1, 0) sums to zero and is not stored
    with pytest.raises(ValueError, match="occur more than once"):
        from_coo(rows, cols, values, duplicates="error")


def test_from_coo_dtype_float64_is_bit_exact():
    values = np.array([0.1, 1 / 3])
    adata = from_coo([0, 1], [0, 0], values, dtype=np.float64)
    np.testing.assert_array_equal(to_coo(adata)[2], values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": [0, 1], "cols": [0], "values": [1.0, 2.0]}, "equal length"),
        ({"rows": [[0, 1]], "cols": [0, 1], "values": [1.0, 2.0]}, "1-D"),
        ({"rows": [-1, 0], "cols": [0, 1], "values": [1.0, 2.0]}, "non-negative"),
        ({"rows": [0, 1], "cols": [0, 1], "values": [np.nan, 2.0]}, "NaN"),
        (
            {"rows": [0, 5], "cols": [0, 1], "values": [1.0, 2.0], "shape": (3, 3)},
            "enlarge `shape`",
        ),
        (
            {
                "rows": [0, 1],
                "cols": [0, 1],
                "values": [1.0, 2.0],
                "obs_names": ["a"],
                "shape": (2, 2),
            },
            "obs_names",
        ),
        ({"rows": [0, 1], "cols": [0, 1], "values": [1.0, 2.0], "var_names": ["a", "a"]}, "unique"),
        (
            {"rows": [0, 1], "cols": [0, 1], "values": [1.0, 2.0], "duplicates": "mean"},
            "duplicates",
        ),
    ],
)
def test_from_coo_bad_input(kwargs, match):
    rows, cols, values = kwargs.pop("rows"), kwargs.pop("cols"), kwargs.pop("values")
    with pytest.raises(ValueError, match=match):
        from_coo(rows, cols, values, **kwargs)


def test_from_coo_rejects_fractional_indices():
    with pytest.raises(TypeError, match="integer indices"):
        from_coo([0.5, 1], [0, 1], [1.0, 2.0])


def test_from_dense_threshold_round_trip(rng):
    dense = rng.normal(size=(20, 15)).astype(np.float32)
    before = dense.copy()
    adata = from_dense(dense, threshold=0.5)
    assert_canonical(adata.X)
    expected = np.where(np.abs(dense) > 0.5, dense, 0)
    np.testing.assert_array_equal(to_dense(adata), expected)
    np.testing.assert_array_equal(dense, before)
    # exactly at the threshold becomes zero
    assert from_dense(np.array([[0.5, -0.5, 0.6]]), threshold=0.5).X.nnz == 1


def test_from_dense_zero_threshold_keeps_all_nonzeros():
    dense = np.array([[0.0, 1e-30, -2.0], [3.0, 0.0, 0.0]])
    adata = from_dense(dense, obs_names=["x", "y"], var_names=["a", "b", "c"])
    np.testing.assert_array_equal(to_dense(adata), dense.astype(np.float32))
    assert list(adata.var_names) == ["a", "b", "c"]


def test_from_dense_dataframe_names():
    df = pd.DataFrame([[0, 1], [2, 0]], index=["c1", "c2"], columns=["g1", "g2"])
    adata = from_dense(df)
    assert list(adata.obs_names) == ["c1", "c2"]
    assert list(adata.var_names) == ["g1", "g2"]


@pytest.mark.parametrize(
    ("array", "kwargs", "match"),
    [
        (np.zeros(3), {}, "2-D"),
        (np.zeros((2, 2, 2)), {}, "2-D"),
        ([[1.0, 2.0], [3.0]], {}, "ragged"),
        ([[1.0, np.nan]], {}, "NaN"),
        ([[1.0, 2.0]], {"threshold": -1.0}, "threshold"),
        ([[1.0, 2.0]], {"var_names": ["a"]}, "var_names"),
    ],
)
def test_from_dense_bad_input(array, kwargs, match):
    with pytest.raises(ValueError, match=match):
        from_dense(array, **kwargs)


def test_to_coo_layer_and_missing_layer():
    adata = from_dense(np.eye(3))
    adata.layers["counts"] = sp.csr_matrix(2 * np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(to_coo(adata, layer="counts")[2], [2, 2, 2])
    with pytest.raises(KeyError, match="raw"):
        to_coo(adata, layer="raw")


def test_to_coo_does_not_modify_input():
    X = sp.csr_matrix(np.array([[0, 1.0], [2.0, 0]], dtype=np.float32))
    X.data[0] = 0.0  # an explicitly stored zero in the input
    adata = from_dense(np.zeros((2, 2)))
    adata.X = X
    rows, cols, values = to_coo(adata)
    assert adata.X.nnz == 2  # untouched
    np.testing.assert_array_equal(values, [2.0])
