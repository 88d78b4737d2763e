"""Every bad input raises an error that names the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import sc_sed.tl


@pytest.fixture
def pair(real, same):
    return real.copy(), same.copy()


def test_different_features_are_named(pair):
    real, synth = pair
    synth = synth[:, 3:].copy()
    with pytest.raises(
        ValueError,
        match=r"3 features of `real` are missing from `synth` \('gene0', 'gene1', 'gene2'\).*align=True",
    ):
        sc_sed.tl.evaluate(real, synth)


def test_many_missing_features_are_abbreviated(pair):
    real, synth = pair
    synth.var_names = [f"other{i}" for i in range(synth.n_vars)]
    with pytest.raises(
        ValueError,
        match=r"120 features of `real` are missing from `synth` \('gene0', 'gene1', 'gene2', 'gene3', 'gene4', \.\.\.\)",
    ):
        sc_sed.tl.evaluate(real, synth)
    with pytest.raises(ValueError, match="share no features"):
        sc_sed.tl.evaluate(real, synth, align=True)


def test_duplicate_var_names(pair):
    real, synth = pair
    names = list(synth.var_names)
    names[1] = names[0]
    synth.var_names = names
    with pytest.raises(ValueError, match="var_names_make_unique"):
        sc_sed.tl.evaluate(real, synth)


def test_empty_input(pair):
    real, synth = pair
    with pytest.raises(ValueError, match=r"`synth` is empty \(0 rows"):
        sc_sed.tl.evaluate(real, synth[:0].copy())


def test_groupby_missing_says_where(pair):
    real, synth = pair
    del synth.obs["cell_type"]
    with pytest.raises(
        KeyError,
        match=r"groupby='cell_type' is not a column of `synth.obs` \(present in `real.obs`\)",
    ):
        sc_sed.tl.evaluate(real, synth, groupby="cell_type")
    with pytest.raises(KeyError, match="`real.obs`, `synth.obs`"):
        sc_sed.tl.evaluate(real, synth, groupby="batch")


def test_negative_values_suggest_normalize_false(pair):
    real, synth = pair
    synth.X = synth.X.copy()
    synth.X.data[0] = -1.0
    with pytest.raises(ValueError, match="negative values.*normalize=False"):
        sc_sed.tl.evaluate(real, synth)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dense", [False, True])
def test_non_finite_values(pair, bad, dense):
    real, synth = pair
    X = real.X.toarray()
    X[0, 0] = bad
    real.X = X if dense else sparse.csr_matrix(X)
    with pytest.raises(ValueError, match="`real` contains 1 non-finite"):
        sc_sed.tl.evaluate(real, synth, normalize=False)


def test_missing_layer(pair):
    with pytest.raises(KeyError, match=r"Layer 'counts' not found in `real.layers`"):
        sc_sed.tl.evaluate(*pair, layer="counts")


def test_not_anndata(pair):
    with pytest.raises(TypeError, match="`synth` must be an AnnData"):
        sc_sed.tl.evaluate(pair[0], pair[1].X)


def test_metric_options(pair):
    with pytest.raises(ValueError, match="Unknown metrics \\['fid'\\]"):
        sc_sed.tl.evaluate(*pair, metrics=["fid"])
    with pytest.raises(ValueError, match="'label_accuracy' needs `groupby`"):
        sc_sed.tl.evaluate(*pair, metrics=["label_accuracy"])
    with pytest.raises(ValueError, match="'memorisation_ratio' needs `train`"):
        sc_sed.tl.evaluate(*pair, metrics=["memorisation_ratio"])


def test_bad_settings(pair):
    with pytest.raises(ValueError, match="`max_cells` must be at least 2"):
        sc_sed.tl.evaluate(*pair, max_cells=1)
    with pytest.raises(ValueError, match="`n_pcs` must be a positive integer"):
        sc_sed.tl.evaluate(*pair, n_pcs=0)
    with pytest.raises(ValueError, match="classifier='svm' is not supported"):
        sc_sed.tl.evaluate(*pair, classifier="svm")
    with pytest.raises(ValueError, match="`n_folds` must be at least 2"):
        sc_sed.tl.evaluate(*pair, n_folds=1)


def test_too_few_real_rows_for_pca(pair):
    real, synth = pair
    with pytest.raises(ValueError, match="`real` has 3 rows"):
        sc_sed.tl.evaluate(real[:3].copy(), synth, metrics=["mmd"])
