"""SpectralFeatures: a row's principal-component scores read from its non-zeros."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sc_sed.data import csr_to_tokens, sparse_pca
from sc_sed.nn import SetEncoder, SpectralFeatures, transform_values


def _counts(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix(rng.poisson(0.4, size=(40, 25)).astype(np.float32))


def _dense_transform(x: np.ndarray, transform: str) -> np.ndarray:
    if transform == "lognorm":  # scanpy: normalize_total(target_sum=1e4), log1p
        total = x.sum(1, keepdims=True)
        return np.log1p(1e4 * x / np.where(total > 0, total, 1))
    return np.log1p(x) if transform == "log1p" else x


@pytest.mark.parametrize("transform", ["lognorm", "log1p", "identity"])
def test_scores_equal_dense_projection_of_the_transformed_rows(transform):
    x = _counts()
    dense = _dense_transform(x.toarray().astype(np.float64), transform)
    loadings, mean, sd = sparse_pca(sp.csr_matrix(dense), 4)
    spec = SpectralFeatures(x.shape[1], 4, transform)
    spec.set_components(loadings, mean, sd)
    tok = csr_to_tokens(x)
    got = spec(tok.index, tok.value, tok.pair_mask)
    want = ((dense - mean) @ loadings) / sd
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    assert bool(spec.fitted)


def test_transform_values_ignores_padding():
    value = torch.tensor([[2.0, 3.0, 99.0]])
    mask = torch.tensor([[True, True, False]])
    got = transform_values(value, mask, "lognorm")
    want = torch.log1p(1e4 * torch.tensor([2.0, 3.0, 0.0]) / 5.0)
    torch.testing.assert_close(got[0], want)


def test_unfitted_features_are_zero_and_bad_input_is_refused():
    spec = SpectralFeatures(25, 3, "lognorm")
    tok = csr_to_tokens(_counts())
    assert (spec(tok.index, tok.value, tok.pair_mask) == 0).all() and not bool(spec.fitted)
    with pytest.raises(ValueError, match="loadings must have shape"):
        spec.set_components(np.zeros((24, 3)), np.zeros(24), np.ones(3))
    with pytest.raises(ValueError, match="Unknown spectral transform"):
        SpectralFeatures(25, 3, "zscore")


def _fitted_encoder(seed: int = 0) -> tuple[SetEncoder, sp.csr_matrix]:
    x = _counts(seed)
    spec = SpectralFeatures(x.shape[1], 4, "lognorm")
    dense = _dense_transform(x.toarray().astype(np.float64), "lognorm")
    spec.set_components(*sparse_pca(sp.csr_matrix(dense), 4))
    torch.manual_seed(0)
    enc = SetEncoder(6, 16, 1, 2, 32, 0.0, spectral=spec).eval()
    return enc, x


def test_encoder_with_components_is_permutation_and_padding_invariant():
    enc, x = _fitted_encoder()
    tok = csr_to_tokens(x)
    mu, _ = enc(tok.index, tok.value, tok.pair_mask)
    perm = torch.randperm(tok.index.shape[1])
    mu_p, _ = enc(tok.index[:, perm], tok.value[:, perm], tok.pair_mask[:, perm])
    torch.testing.assert_close(mu, mu_p, rtol=1e-5, atol=1e-5)
    pad = tok.index.shape[1] + 3
    index = torch.cat([tok.index, torch.full((x.shape[0], 3), 0)], dim=1)
    value = torch.cat([tok.value, torch.full((x.shape[0], 3), 50.0)], dim=1)
    mask = torch.cat([tok.pair_mask, torch.zeros(x.shape[0], 3, dtype=torch.bool)], dim=1)
    assert index.shape[1] == pad
    torch.testing.assert_close(enc(index, value, mask)[0], mu, rtol=1e-5, atol=1e-5)


def test_components_reach_the_latent():
    """The head reads the scores: changing the stored loadings changes the latent."""
    enc, x = _fitted_encoder()
    tok = csr_to_tokens(x)
    mu, _ = enc(tok.index, tok.value, tok.pair_mask)
    enc.spectral.loadings.mul_(-1)
    assert not torch.allclose(enc(tok.index, tok.value, tok.pair_mask)[0], mu)
