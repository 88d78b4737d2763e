"""Input matrices: one validation layer (duplicates summed, zeros dropped, NaN/inf and
negatives refused) used by setup, train, reconstruct, latents and the tools."""

from __future__ import annotations

import copy
import math

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import sc_sed
from sc_sed.data import check_matrix, csr_to_tokens, tokens_from_tensor, validated_csr

from ..model.conftest import FIT, TINY, tiny_counts


def _dup_csr() -> sp.csr_matrix:
    """3 × 4 CSR whose row 0 stores (0, 1) twice and row 1 stores (1, 2) three times."""
    data = np.array([1.0, 2.0, 5.0, 1.0, 1.0, 1.0, 4.0, 0.0])
    indices = np.array([1, 1, 3, 2, 2, 2, 0, 3])
    indptr = np.array([0, 3, 6, 8])
    return sp.csr_matrix((data, indices, indptr), shape=(3, 4))


def _same_matrix(a, b) -> None:
    assert type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype
    if sp.issparse(a):
        for attr in ("data", "indices", "indptr") if a.format in ("csr", "csc") else ("data",):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_duplicates_are_summed_on_a_copy(fmt):
    x = _dup_csr()
    x = x if fmt == "csr" else (sp.csc_matrix(x) if fmt == "csc" else x.tocoo())
    if fmt == "csc":  # csc_matrix(csr) sums; rebuild a CSC with a duplicate by hand
        x = sp.csc_matrix(
            (np.array([1.0, 2.0, 3.0]), np.array([0, 0, 2]), np.array([0, 2, 3, 3, 3])),
            shape=(3, 4),
        )
    before = copy.deepcopy(x)
    stats = check_matrix(x)
    assert (stats.n_detected <= stats.n_obs).all()
    out = validated_csr(x)
    _same_matrix(x, before)  # the user's matrix is untouched
    np.testing.assert_allclose(out.toarray(), before.toarray())  # sums = scipy's dense view
    assert out.has_canonical_format and (out.data != 0).all()
    assert stats.max_nonzero == int(np.diff(out.indptr).max())


def test_detection_rate_cannot_exceed_one_and_zeros_are_dropped():
    # feature 0 is in every row, stored twice in each: before, its detection rate was 2
    x = sp.csr_matrix(
        (np.ones(6), np.zeros(6, dtype=int), np.array([0, 2, 4, 6])), shape=(3, 2)
    )
    stats = check_matrix(x)
    assert stats.n_detected.tolist() == [3, 0]
    assert stats.value_sum.tolist() == [6.0, 0.0]
    zeros = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    assert check_matrix(zeros).n_detected.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (np.nan, ValueError, "1 non-finite values"),
        (np.inf, ValueError, "NaN or infinite"),
        (-1.0, ValueError, "negative values"),
    ],
)
def test_bad_values_are_refused(bad, error, match):
    x = _dup_csr()
    x.data[2] = bad  # a position stored once (a duplicate would be summed first)
    before = copy.deepcopy(x)
    with pytest.raises(error, match=match):
        check_matrix(x, nonnegative=True)
    with pytest.raises(error, match=match):
        validated_csr(x.toarray(), nonnegative=True)
    _same_matrix(x, before)


def test_signed_values_pass_without_nonnegative_and_layout_errors():
    assert check_matrix(-_dup_csr()).has_negative
    with pytest.raises(TypeError, match="non-numeric dtype"):
        check_matrix(np.array([["a", "b"]], dtype=object))
    with pytest.raises(ValueError, match="2-D"):
        check_matrix(np.ones(3))
    with pytest.raises(ValueError, match="cannot hold"):  # 200 + 100 does not fit int8
        validated_csr(
            sp.csr_matrix(
                (np.array([100, 100, 100], dtype=np.int8), [0, 0, 0], [0, 3]), shape=(1, 1)
            )
        )


def test_tokens_sum_duplicates_and_ids_strictly_increase():
    x = _dup_csr()
    for tok in (
        csr_to_tokens(x),
        tokens_from_tensor(
            torch.sparse_csr_tensor(
                torch.as_tensor(x.indptr), torch.as_tensor(x.indices), torch.as_tensor(x.data),
                size=x.shape,
            )
        ),
    ):  # fmt: skip
        ids = tok.index.numpy()
        ref = validated_csr(x)
        for r in range(3):
            pairs = ids[r, 1 : 1 + int(tok.n_nonzero[r])]
            assert (np.diff(pairs) > 0).all()
            np.testing.assert_array_equal(pairs, ref[r].indices)
            np.testing.assert_allclose(tok.value[r, 1 : 1 + len(pairs)], ref[r].data)


def _counts_with_duplicates(kind: str = "csr") -> ad.AnnData:
    adata = tiny_counts()
    x = adata.layers["counts"].tocsr()
    # store every row's first entry twice (half of it each time): same matrix, duplicated
    data, indices, indptr = [], [], [0]
    for r in range(x.shape[0]):
        d, i = x.data[x.indptr[r] : x.indptr[r + 1]], x.indices[x.indptr[r] : x.indptr[r + 1]]
        d = np.r_[d[:1] / 2, d[:1] / 2, d[1:]] if len(d) else d
        i = np.r_[i[:1], i[:1], i[1:]] if len(i) else i
        data.append(d)
        indices.append(i)
        indptr.append(indptr[-1] + len(d))
    dup = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=x.shape)
    adata.layers["counts"] = dup if kind == "csr" else sp.csc_matrix(dup)
    return adata


def _stats(model) -> dict:
    return model.adata_manager.registry["field_registries"]["X"]["state_registry"]["sc_sed_stats"]


@pytest.mark.parametrize("kind", ["csr", "backed"])
def test_setup_reads_duplicates_summed_and_never_modifies(kind, tmp_path):
    adata = _counts_with_duplicates()
    clean = adata.layers["counts"].copy()
    clean.sum_duplicates()
    before = copy.deepcopy(adata.layers["counts"])
    if kind == "backed":
        adata.X = adata.layers["counts"]
        del adata.layers["counts"]
        adata.write_h5ad(tmp_path / "dup.h5ad")
        adata = ad.read_h5ad(tmp_path / "dup.h5ad", backed="r")
    layer = None if kind == "backed" else "counts"
    sc_sed.SEDModel.setup_anndata(adata, layer=layer)
    stats = _stats(sc_sed.SEDModel(adata, **TINY))
    np.testing.assert_array_equal(stats["n_detected"], np.diff(clean.tocsc().indptr))
    assert stats["max_nonzero"] == int(np.diff(clean.indptr).max())
    if kind == "csr":
        _same_matrix(adata.layers["counts"], before)


@pytest.fixture(scope="module")
def dup_model():
    adata = _counts_with_duplicates()
    before = copy.deepcopy(adata)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=32, **FIT)
    return model, adata, before


def test_train_and_reconstruct_on_duplicated_data(dup_model):
    model, adata, before = dup_model
    _same_matrix(adata.layers["counts"], before.layers["counts"])
    out = model.reconstruct(seed=2**70, batch_size=7)  # any non-negative seed, as generate
    x = out.X.tocsr()
    assert all((np.diff(x.indices[x.indptr[r] : x.indptr[r + 1]]) > 0).all() for r in range(x.shape[0]))
    assert model.get_latent_representation(batch_size=5).shape == (adata.n_obs, TINY["n_latent"])


def _message(call) -> tuple[type, str]:
    with pytest.raises(Exception) as info:  # noqa: PT011 - compared with generate's below
        call()
    return info.type, str(info.value)


@pytest.mark.parametrize(
    ("arg", "value"),
    [
        ("temperature", 0),
        ("temperature", -1),
        ("temperature", math.nan),
        ("temperature", math.inf),
        ("seed", -1),
        ("seed", 1.5),
        ("seed", True),
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("batch_size", -3),
    ],
)
def test_reconstruct_and_latent_check_arguments_like_generate(dup_model, arg, value):
    model, adata, before = dup_model
    expected = _message(lambda: model.generate(5, **{arg: value}, progress_bar=False))
    assert expected[0] is ValueError
    assert _message(lambda: model.reconstruct(**{arg: value})) == expected
    if arg == "batch_size":
        assert _message(lambda: model.get_latent_representation(batch_size=value)) == expected
    _same_matrix(adata.layers["counts"], before.layers["counts"])


@pytest.mark.parametrize(("bad", "match"), [(np.nan, "non-finite"), (-2.0, "negative values")])
def test_reconstruct_latent_and_train_refuse_bad_data(dup_model, bad, match):
    model, adata, _ = dup_model
    other = adata[:8].copy()
    other.layers["counts"] = other.layers["counts"].copy()
    other.layers["counts"].data[0] = bad
    before = copy.deepcopy(other.layers["counts"])
    with pytest.raises(ValueError, match=match):
        model.reconstruct(other)
    with pytest.raises(ValueError, match=match):
        model.get_latent_representation(other)
    _same_matrix(other.layers["counts"], before)
    # the registered data changed after setup: train refuses them before any step
    saved = adata.layers["counts"].data[0]
    adata.layers["counts"].data[0] = bad
    try:
        with pytest.raises(ValueError, match=match):
            model.train_autoencoder(max_epochs=1, **FIT)
    finally:
        adata.layers["counts"].data[0] = saved


def test_gaussian_model_accepts_signed_data():
    adata = tiny_counts(n_cells=20)
    adata.layers["signed"] = adata.layers["counts"].copy()
    adata.layers["signed"].data[::2] *= -1
    sc_sed.SEDModel.setup_anndata(adata, layer="signed")
    with pytest.raises(ValueError, match="negative values"):
        sc_sed.SEDModel(adata, **TINY)
    model = sc_sed.SEDModel(adata, value_likelihood="gaussian", **TINY)
    model._check_data(adata)  # signed values pass the model's own data check
