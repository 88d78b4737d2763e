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


@torch.no_grad()
def decode_uncached(dec, z, max_length, *, allowed=None, generator=None, greedy=False):
    """The reference: re-run the teacher-forced forward pass on the whole prefix every step.

    O(length^2) per row and no compaction (every row draws at every step), so its random
    draws match the cached loop's only while no row leaves the batch.
    """
    vocab, n = dec.vocab, z.shape[0]
    tables = dec.index_head.prepare(allowed, z.device)
    terms = dec.latent_terms(z)
    index = torch.full((n, 1), vocab.start, dtype=torch.long)
    value = torch.zeros(n, 1)
    last = torch.full((n,), -1, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    out_index, out_value = [], []
    for _ in range(max_length):
        h = dec(z, index, value)[:, -1]
        next_id = dec.index_head.sample(
            h, last, tables=tables, context_terms=terms.index, generator=generator, greedy=greedy
        )
        params = dec.value_params(h, next_id.clamp_max(vocab.end - 1), terms)
        next_value = dec.value_head.sample(params, generator=generator, greedy=greedy)
        emit = ~done & vocab.is_feature(next_id)
        done |= ~vocab.is_feature(next_id)
        out_index.append(torch.where(emit, next_id, vocab.pad))
        out_value.append(torch.where(emit, next_value.float(), 0.0))
        last = torch.where(emit, next_id, last)
        index = torch.cat([index, next_id.clamp_max(vocab.end - 1)[:, None]], dim=1)
        value = torch.cat([value, next_value.float()[:, None]], dim=1)
        if done.all():
            break
    n_nonzero = torch.stack(out_index, 1).lt(dec.n_features).sum(1)
    length = int(n_nonzero.max())
    return torch.stack(out_index, 1)[:, :length], torch.stack(out_value, 1)[:, :length], n_nonzero


@pytest.mark.parametrize("head", ["flat", "factorised"])
@pytest.mark.parametrize("static", [False, True])
def test_cached_decoding_equals_uncached_reference(head, static):
    dec = _decoder(index_head=head)
    z = torch.randn(9, 8) * 3
    allowed = torch.ones(D, dtype=torch.bool)
    allowed[::4] = False
    # longer than the allowed features, so every row ends with END, however it is initialised
    length = int(allowed.sum()) + 2
    for greedy, check_every in ((True, None), (False, 100)):  # sampling: no compaction
        g = torch.Generator().manual_seed(0)
        a = dec.generate(
            z, length, allowed=allowed, generator=g, greedy=greedy, check_every=check_every,
            static_shapes=static,
        )  # fmt: skip
        g = torch.Generator().manual_seed(0)
        b = decode_uncached(dec, z, length, allowed=allowed, generator=g, greedy=greedy)
        assert int(a[2].sum()) > 0 and int((a[2] < length).sum()) > 0  # some rows end early
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


def _forced(dec, gap=20.0):
    """Make every row emit the smallest valid id at every step (never END early)."""
    head = dec.index_head
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.fill_(gap)
    return dec


@pytest.mark.parametrize("head", ["flat", "factorised"])
def test_same_seed_same_output(head):
    dec = _decoder(index_head=head)
    z = torch.randn(17, 8) * 3
    a = dec.generate(z, 12, generator=torch.Generator().manual_seed(5))
    b = dec.generate(z, 12, generator=torch.Generator().manual_seed(5))
    c = dec.generate(z, 12, generator=torch.Generator().manual_seed(6))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("head", ["flat", "factorised"])
def test_static_shapes_match_dynamic_path(head):
    dec = _decoder(index_head=head)
    z = torch.randn(9, 8) * 3
    for greedy in (True, False):
        kw = {"greedy": greedy, "check_every": 100}  # no compaction: same draws per row
        a = dec.generate(z, 12, generator=torch.Generator().manual_seed(0), **kw)
        b = dec.generate(
            z, 12, generator=torch.Generator().manual_seed(0), static_shapes=True, **kw
        )
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y)


def test_sparse_checks_give_valid_rows_and_stop_early():
    dec = _decoder()
    z = torch.randn(32, 8) * 3
    calls = []
    from sc_sed.nn import _decoding

    original = _decoding._DecodeState.finished_or_compacted

    def counted(self):
        calls.append(1)
        return original(self)

    _decoding._DecodeState.finished_or_compacted = counted
    try:
        index, value, n = dec.generate(
            z, 40, generator=torch.Generator().manual_seed(0), check_every=8
        )
    finally:
        _decoding._DecodeState.finished_or_compacted = original
    assert len(calls) <= 40 // 8
    assert ((index[:, 1:] > index[:, :-1]) | (index[:, 1:] == D + 2)).all()
    assert torch.equal((index < D).sum(1), n)


@pytest.mark.parametrize("static", [False, True])
def test_no_forward_pass_after_the_last_step(static):
    dec = _forced(_decoder())
    calls = []
    dec.norm.register_forward_hook(lambda *a: calls.append(1))  # once per decoding step
    z = torch.randn(4, 8)
    _, _, n = dec.generate(z, 5, generator=torch.Generator().manual_seed(0), static_shapes=static)
    assert n.tolist() == [5] * 4
    assert len(calls) == 5


def test_index_head_tables_built_once_per_call():
    dec = _decoder(index_head="factorised")
    head = dec.index_head
    calls = []
    prepare = head.prepare
    head.prepare = lambda *a: calls.append(1) or prepare(*a)
    dec.generate(torch.randn(3, 8), 10, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1


def test_static_options_need_cuda():
    dec = _decoder()
    with pytest.raises(ValueError, match="CUDA"):
        dec.generate(torch.randn(2, 8), 4, cuda_graph=True)
    with pytest.raises(ValueError, match="check_every"):
        dec.generate(torch.randn(2, 8), 4, check_every=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("head", ["flat", "factorised"])
def test_cuda_graph_matches_static_eager(head):
    dec = _decoder(index_head=head).cuda()
    z = torch.randn(64, 8, device="cuda") * 3
    outs = []
    for graph in (False, True):
        g = torch.Generator(device="cuda").manual_seed(0)
        outs.append(dec.generate(z, 20, generator=g, static_shapes=True, cuda_graph=graph))
    for x, y in zip(*outs, strict=True):
        torch.testing.assert_close(x, y)
    g = torch.Generator(device="cuda").manual_seed(0)
    index, value, n = dec.generate(
        z, 20, generator=g, cuda_graph=True, autocast_dtype=torch.bfloat16
    )
    assert ((index[:, 1:] > index[:, :-1]) | (index[:, 1:] == D + 2)).all()
    assert torch.equal((index < D).sum(1), n)


def test_module_sample_passes_decoding_options_through():
    from sc_sed.module import SEDModule

    torch.manual_seed(0)
    module = SEDModule(
        n_features=12,
        max_nonzero=5,
        n_latent=4,
        n_hidden=16,
        n_heads=2,
        n_ff=16,
        denoiser_widths=(16, 8),
    ).eval()
    cond = torch.zeros(6, 0, dtype=torch.long)
    out = [
        module.sample(
            cond, n_steps=3, generator=torch.Generator().manual_seed(1), static_shapes=flag
        )
        for flag in (False, True)
    ]
    for a, b in zip(out[0], out[1], strict=True):
        assert torch.equal(a, b)
    with pytest.raises(TypeError):
        module.sample(cond, n_steps=3, not_an_option=True)


@pytest.mark.parametrize("term", ["tied", "free"])
@pytest.mark.parametrize("head", ["flat", "factorised"])
def test_decoded_values_follow_the_value_path_of_teacher_forcing(head, term):
    """Decoding (with compaction) reads each row's own latent term on the value location."""
    dec = _decoder(index_head=head, value_latent_term=term, context_width=6)
    with torch.no_grad():
        torch.nn.init.normal_(dec.value_head.context_weight, std=1.0)
        torch.nn.init.normal_(dec.value_head.feature_bias, std=0.5)
        if head == "flat":  # rows of different lengths under greedy decoding
            torch.nn.init.normal_(dec.index_head.proj.weight, std=1.0)
            dec.index_head.proj.bias.fill_(-1.0)
            torch.nn.init.normal_(dec.index_head.context_proj[-1].weight, std=1.0)
        else:
            torch.nn.init.normal_(dec.index_head.context_offset, std=1.0)
    z = torch.randn(24, 8) * 3
    index, value, n = dec.generate(z, 12, greedy=True)
    assert n.unique().numel() > 1  # rows finish at different steps: decoding compacts
    tok = csr_to_tokens(pairs_to_csr(index, value, D))
    h = dec(z, tok.index[:, :-1], tok.value[:, :-1])
    target = tok.index[:, 1:]
    pair = target < D
    terms = dec.latent_terms(z.unsqueeze(1))
    params = dec.value_params(h, torch.where(pair, target, 0), terms)
    expected = dec.value_head.sample(params, greedy=True)
    assert torch.equal(expected[pair], tok.value[:, 1:][pair])
    # the latent's value term matters: without it the same rows get other values
    dec.value_head.context_weight.data.zero_()
    params = dec.value_params(h, torch.where(pair, target, 0), terms)
    assert not torch.equal(dec.value_head.sample(params, greedy=True)[pair], expected[pair])


@pytest.mark.parametrize("head", ["flat", "factorised"])
def test_tied_value_term_is_the_detection_term_of_the_chosen_feature(head):
    """feature_terms: the latent's own part of each chosen feature's hazard logit."""
    dec = _decoder(index_head=head, value_latent_term="tied", context_width=6)
    ih = dec.index_head
    with torch.no_grad():
        if head == "flat":
            torch.nn.init.normal_(ih.context_proj[-1].weight)
        else:
            torch.nn.init.normal_(ih.context_offset)
            torch.nn.init.normal_(ih.offset_bias)
    z = torch.randn(3, 1, 8)
    feature = torch.tensor([[0, 5, 29], [7, 7, 1], [28, 2, 3]])
    got = ih.feature_terms(ih.context_terms(z), feature)
    features = ih.context_features(z)[:, 0]  # (3, width)
    if head == "flat":
        want = features @ ih.context_proj[-1].weight.T
    else:
        want = features @ ih.context_offset.view(-1, 6).T  # no offset bias
    torch.testing.assert_close(got, want.gather(1, feature))
