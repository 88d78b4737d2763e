"""MuData <-> one AnnData with a joint feature space."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sc_sed.data._mudata import concat_modalities, split_modalities


def make_mdata(rng, *, collide: bool = True) -> md.MuData:
    cells = [f"c{i}" for i in range(8)]
    rna = ad.AnnData(
        X=sp.random(8, 5, density=0.4, format="csr", dtype=np.float32, rng=rng),
        obs=pd.DataFrame({"cell_type": pd.Categorical(list("abababab"))}, index=cells),
        var=pd.DataFrame(
            {"hvg": [True, False, True, True, False]}, index=[f"g{j}" for j in range(5)]
        ),
    )
    rna.layers["counts"] = rna.X * 3
    prot_names = ["g0", "p1", "p2"] if collide else ["p0", "p1", "p2"]
    prot = ad.AnnData(
        X=sp.random(8, 3, density=0.6, format="csr", dtype=np.float32, rng=rng),
        obs=pd.DataFrame({"qc": np.arange(8, dtype=np.float64)}, index=cells),
        var=pd.DataFrame({"isotype": [0, 1, 0]}, index=prot_names),
    )
    prot.layers["counts"] = prot.X * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with md.set_options(pull_on_update=False):
            mdata = md.MuData({"rna": rna, "prot": prot})
    mdata.obs["donor"] = pd.Categorical(["d1"] * 4 + ["d2"] * 4)
    return mdata


def test_concat_prefixes_on_collision(rng):
    mdata = make_mdata(rng)
    joint = concat_modalities(mdata)
    assert (
        type(joint.X) is sp.csr_matrix and joint.X.has_sorted_indices and np.all(joint.X.data != 0)
    )
    assert joint.shape == (8, 8)
    assert list(joint.var_names[:2]) == ["rna:g0", "rna:g1"]
    assert list(joint.var_names[5:]) == ["prot:g0", "prot:p1", "prot:p2"]
    assert joint.var["modality"].tolist() == ["rna"] * 5 + ["prot"] * 3
    assert {"donor", "rna:cell_type", "prot:qc"} <= set(joint.obs.columns)
    dense = np.hstack([mdata.mod["rna"].X.toarray(), mdata.mod["prot"].X.toarray()])
    np.testing.assert_array_equal(joint.X.toarray(), dense)


def test_no_prefix_without_collision(rng):
    joint = concat_modalities(make_mdata(rng, collide=False))
    assert list(joint.var_names) == [f"g{j}" for j in range(5)] + ["p0", "p1", "p2"]


@pytest.mark.filterwarnings("ignore:var_names are not unique")
@pytest.mark.parametrize("collide", [True, False])
def test_round_trip_through_h5ad(rng, collide, tmp_path):
    mdata = make_mdata(rng, collide=collide)
    before = {m: mdata.mod[m].X.copy() for m in mdata.mod}
    concat_modalities(mdata).write_h5ad(tmp_path / "joint.h5ad")
    back = split_modalities(ad.read_h5ad(tmp_path / "joint.h5ad"))
    assert list(back.mod) == ["rna", "prot"]
    for name, original in mdata.mod.items():
        restored = back.mod[name]
        assert (restored.X != original.X).nnz == 0
        pd.testing.assert_index_equal(restored.obs_names, original.obs_names)
        pd.testing.assert_frame_equal(restored.var, original.var)
        pd.testing.assert_frame_equal(restored.obs, original.obs)
        assert (mdata.mod[name].X != before[name]).nnz == 0
    assert back.obs["donor"].tolist() == mdata.obs["donor"].tolist()


def test_layer_and_subset_of_modalities(rng):
    mdata = make_mdata(rng)
    joint = concat_modalities(mdata, modalities=["prot"], layer="counts")
    assert joint.n_vars == 3
    assert list(joint.var_names) == ["g0", "p1", "p2"]
    np.testing.assert_array_equal(joint.X.toarray(), mdata.mod["prot"].layers["counts"].toarray())
    back = split_modalities(joint)
    assert list(back.mod) == ["prot"]
    assert (back.mod["prot"].layers["counts"] != mdata.mod["prot"].layers["counts"]).nnz == 0


def test_reordered_cells_are_aligned(rng):
    mdata = make_mdata(rng)
    prot = mdata.mod["prot"][::-1].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shuffled = md.MuData({"rna": mdata.mod["rna"], "prot": prot})
    joint = concat_modalities(shuffled)
    np.testing.assert_array_equal(joint.X[:, 5:].toarray(), mdata.mod["prot"].X.toarray())


def test_bad_input(rng):
    mdata = make_mdata(rng)
    with pytest.raises(KeyError, match="atac"):
        concat_modalities(mdata, modalities=["rna", "atac"])
    with pytest.raises(TypeError, match="MuData"):
        concat_modalities(mdata.mod["rna"])
    with pytest.raises(KeyError, match="modality"):
        split_modalities(mdata.mod["rna"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uneven = md.MuData({"rna": mdata.mod["rna"], "prot": mdata.mod["prot"][:5].copy()})
    with pytest.raises(ValueError, match="same cells"):
        concat_modalities(uneven)
