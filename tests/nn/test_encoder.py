import math

import pytest
import torch

from sc_sed.data import csr_to_tokens
from sc_sed.nn import SetEncoder
from sc_sed.nn._encoder import row_size


def _tokens():
    import scipy.sparse as sp

    x = sp.csr_matrix(
        torch.tensor(
            [[0, 3, 0, 1, 0, 2, 0, 0], [1, 0, 0, 0, 0, 0, 0, 4], [0] * 8], dtype=torch.float32
        ).numpy()
    )
    return csr_to_tokens(x)


@pytest.mark.parametrize("size_features", [False, True])
def test_encoder_is_permutation_invariant(size_features):
    torch.manual_seed(0)
    enc = SetEncoder(
        n_latent=6, n_hidden=32, n_layers=2, n_heads=4, n_ff=64, size_features=size_features
    ).eval()
    tok = _tokens()
    mask = tok.pair_mask
    mu, logvar = enc(tok.index, tok.value, mask)
    perm = torch.randperm(tok.index.shape[1])
    mu_p, logvar_p = enc(tok.index[:, perm], tok.value[:, perm], mask[:, perm])
    torch.testing.assert_close(mu, mu_p, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logvar, logvar_p, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size_features", [False, True])
def test_encoder_ignores_padding_length_and_content(size_features):
    torch.manual_seed(0)
    enc = SetEncoder(
        n_latent=6, n_hidden=32, n_layers=2, n_heads=4, n_ff=64, size_features=size_features
    ).eval()
    tok = _tokens()
    mu, _ = enc(tok.index, tok.value, tok.pair_mask)
    extra = 7
    index = torch.cat([tok.index, torch.randint(0, 8, (3, extra))], dim=1)
    value = torch.cat([tok.value, torch.rand(3, extra) * 100], dim=1)
    mask = torch.cat([tok.pair_mask, torch.zeros(3, extra, dtype=torch.bool)], dim=1)
    mu2, _ = enc(index, value, mask)
    torch.testing.assert_close(mu, mu2, rtol=1e-5, atol=1e-5)


def test_empty_row_encodes_to_finite_values():
    enc = SetEncoder(n_latent=6, n_hidden=32, n_layers=1, n_heads=4, n_ff=64).eval()
    tok = _tokens()
    mu, logvar = enc(tok.index, tok.value, tok.pair_mask)
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()
    assert not torch.allclose(mu[2], mu[0])


def test_row_size_counts_real_pairs_only():
    tok = _tokens()
    value = tok.value.clone()
    value[~tok.pair_mask] = 100.0  # padding and framing tokens must not count
    size = row_size(value, tok.pair_mask)
    expected = torch.tensor(
        [[math.log1p(3), math.log1p(6)], [math.log1p(2), math.log1p(5)], [0.0, 0.0]]
    )
    torch.testing.assert_close(size, expected)


def test_size_features_reach_the_latent():
    """With the pooled tokens' weights zeroed, mu is exactly the linear map of the row's size."""
    torch.manual_seed(0)
    enc = SetEncoder(n_latent=6, n_hidden=32, n_layers=1, n_heads=4, n_ff=64, size_features=True)
    enc.eval()
    assert enc.head.in_features == 32 + 2
    with torch.no_grad():
        enc.head.weight[:, :32] = 0.0
    tok = _tokens()
    mu, _ = enc(tok.index, tok.value, tok.pair_mask)
    size = row_size(tok.value, tok.pair_mask)
    w, b = enc.head.weight[:6, 32:], enc.head.bias[:6]
    torch.testing.assert_close(mu, size @ w.T + b)
    assert not torch.allclose(mu[0], mu[1])
