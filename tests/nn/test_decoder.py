import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sc_sed.data import csr_to_tokens, pairs_to_csr
from sc_sed.nn import ARDecoder

D = 30


def _decoder(**kw):
    torch.manual_seed(0)
    return ARDecoder(
        D, n_latent=8, n_hidden=32, n_layers=2, n_heads=4, n_ff=64, dropout_rate=0.0, **kw
    ).eval()


def test_decoder_is_causal():
    dec = _decoder()
    z = torch.randn(2, 8)
    index = torch.tensor([[D + 1, 2, 5, 9, 11], [D + 1, 1, 3, 4, 20]])
    value = torch.rand(2, 5) * 5
    h = dec(z, index, value)
    index2, value2 = index.clone(), value.clone()
    index2[:, 3:] = torch.tensor([[12, 13], [21, 25]])
    value2[:, 3:] = 7.0
    h2 = dec(z, index2, value2)
    torch.testing.assert_close(h[:, :3], h2[:, :3])
    assert not torch.allclose(h[:, 3:], h2[:, 3:])


@pytest.mark.parametrize("head", ["flat", "factorised"])
def test_cached_decoding_equals_uncached(head):
    dec = _decoder(index_head=head)
    z = torch.randn(9, 8) * 3
    for greedy in (True, False):
        a = dec.generate(z, 12, generator=torch.Generator().manual_seed(0), greedy=greedy)
        b = dec.generate(
            z, 12, generator=torch.Generator().manual_seed(0), greedy=greedy, use_cache=False
        )
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y)


@pytest.mark.parametrize("lik", ["ztnb", "lognormal"])
def test_generated_rows_valid(lik):
    dec = _decoder(value_likelihood=lik)
    allowed = torch.ones(D, dtype=torch.bool)
    allowed[::3] = False
    z = torch.randn(64, 8) * 3
    index, value, n = dec.generate(
        z, 15, allowed=allowed, generator=torch.Generator().manual_seed(1)
    )
    assert (n <= 15).all()
    m = pairs_to_csr(index, value, D)
    assert m.shape == (64, D)
    for r in range(64):
        cols = m.indices[m.indptr[r] : m.indptr[r + 1]]
        assert (np.diff(cols) > 0).all()
        assert allowed[cols].all()
    assert (m.data > 0).all()
    if lik == "ztnb":
        assert np.array_equal(m.data, np.round(m.data)) and (m.data >= 1).all()
    assert np.array_equal(np.diff(m.indptr), n.numpy())


def test_log_likelihood_masks_padding():
    dec = _decoder()
    x = sp.csr_matrix(
        np.array([[0, 2, 0, 1] + [0] * (D - 4), [3] + [0] * (D - 1)], dtype=np.float32)
    )
    tok = csr_to_tokens(x)
    out = dec.log_likelihood(torch.randn(2, 8), tok.index, tok.value)
    assert out["target_mask"].sum(1).tolist() == [3, 2]  # pairs + END
    assert out["pair_mask"].sum(1).tolist() == [2, 1]
    assert (out["index_logp"][~out["target_mask"]] == 0).all()
    assert torch.isfinite(out["index_logp"]).all() and torch.isfinite(out["value_nll"]).all()
