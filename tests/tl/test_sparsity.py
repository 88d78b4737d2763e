from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import sc_sed.tl

TINY = np.array(
    [
        [0.0, 2.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, 0.0],
        [3.0, 1.0, 0.0, 0.0],
    ]
)


def _tiny(kind: str) -> ad.AnnData:
    X = sparse.csr_matrix(TINY) if kind == "csr" else TINY.copy()
    return ad.AnnData(
        X=X, obs=pd.DataFrame(index=["a", "b", "c"]), var=pd.DataFrame(index=list("wxyz"))
    )


@pytest.mark.parametrize("kind", ["csr", "dense"])
def test_sparsity_stats_hand_computed(kind):
    var_df, obs_df = sc_sed.tl.sparsity_stats(_tiny(kind))
    np.testing.assert_allclose(var_df["sc_sed_detection_rate"], [1 / 3, 2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(var_df["sc_sed_mean"], [1.0, 1.0, 0.0, 1 / 3])
    np.testing.assert_array_equal(obs_df["sc_sed_n_nonzero"], [2, 0, 2])
    np.testing.assert_allclose(obs_df["sc_sed_total"], [3.0, 0.0, 4.0])
    assert list(var_df.index) == list("wxyz")
    assert list(obs_df.index) == ["a", "b", "c"]


def test_explicit_zeros_are_not_counted():
    adata = _tiny("csr")
    adata.X.data[0] = 0.0  # stored but zero: row "a" now has one non-zero
    var_df, obs_df = sc_sed.tl.sparsity_stats(adata)
    assert obs_df["sc_sed_n_nonzero"].tolist() == [1, 0, 2]
    np.testing.assert_allclose(var_df["sc_sed_detection_rate"], [1 / 3, 1 / 3, 0, 1 / 3])


def test_inplace_writes_documented_keys_and_returns_none():
    adata = _tiny("csr")
    assert sc_sed.tl.sparsity_stats(adata, inplace=True) is None
    assert {"sc_sed_detection_rate", "sc_sed_mean"} <= set(adata.var.columns)
    assert {"sc_sed_n_nonzero", "sc_sed_total"} <= set(adata.obs.columns)
    np.testing.assert_allclose(adata.obs["sc_sed_total"], [3.0, 0.0, 4.0])


def test_not_inplace_leaves_adata_untouched():
    adata = _tiny("csr")
    sc_sed.tl.sparsity_stats(adata)
    assert adata.obs.columns.empty and adata.var.columns.empty


def test_layer_is_used():
    adata = _tiny("dense")
    adata.layers["twice"] = sparse.csr_matrix(TINY * 2)
    var_df, _ = sc_sed.tl.sparsity_stats(adata, layer="twice")
    np.testing.assert_allclose(var_df["sc_sed_mean"], [2.0, 2.0, 0.0, 2 / 3])
    with pytest.raises(KeyError, match="Layer 'nope' not found"):
        sc_sed.tl.sparsity_stats(adata, layer="nope")


def _with_columns(rows: list[list[float]]) -> ad.AnnData:
    X = sparse.csr_matrix(np.array(rows, dtype=float))
    return ad.AnnData(X=X, var=pd.DataFrame(index=list("abcdef")))


def test_spurious_features_counted_exactly():
    real = _with_columns([[1, 0, 0, 0, 2, 0], [0, 3, 0, 0, 0, 0]])
    train = _with_columns([[0, 0, 5, 0, 0, 0]])
    synth = _with_columns([[1, 0, 1, 0, 0, 1], [0, 0, 0, 7, 0, 0], [0, 1, 0, 0, 0, 0]])
    # features c, d, f are zero everywhere in real; c is seen in train
    only = ["n_spurious_features"]
    df = sc_sed.tl.evaluate(real, synth, metrics=only)
    assert df.loc[0, "value"] == 3
    df = sc_sed.tl.evaluate(real, synth, train=train, metrics=only)
    assert df.loc[0, "value"] == 2
    assert df.loc[0, "better"] == "lower" and df.loc[0, "ideal"] == 0


def test_spurious_features_zero_for_own_support(real):
    df = sc_sed.tl.evaluate(
        real, real[::-1].copy(), metrics=["n_spurious_features", "zero_fraction_diff"]
    )
    assert df["value"].tolist() == [0.0, 0.0]


def test_shared_matrices_match_features_and_leave_inputs_unchanged():
    real = _tiny("dense")
    synth = _tiny("csr")[:, ["z", "x", "w"]].copy()  # a subset, in another order
    before = synth.X.copy()
    with pytest.raises(ValueError):
        sc_sed.tl.shared_matrices(real, synth)  # different features without align
    X_real, X_synth, names = sc_sed.tl.shared_matrices(real, synth, align=True)
    assert list(names) == ["w", "x", "z"]  # the real set's order
    assert sparse.isspmatrix_csr(X_real) and sparse.isspmatrix_csr(X_synth)
    np.testing.assert_array_equal(X_real.toarray(), TINY[:, [0, 1, 3]])
    np.testing.assert_array_equal(X_synth.toarray(), TINY[:, [0, 1, 3]])
    assert (synth.X != before).nnz == 0 and list(synth.var_names) == ["z", "x", "w"]


def test_shared_matrices_refuse_non_finite_values():
    bad = _tiny("dense")
    bad.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN|finite|non-finite"):
        sc_sed.tl.shared_matrices(bad, _tiny("dense"))
