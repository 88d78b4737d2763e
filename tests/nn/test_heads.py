import pytest
import torch

from sc_sed.nn import FactorisedIndexHead, FlatIndexHead

D = 23


HEAD_IDS = ["flat", "factorised", "flat-context-mlp", "factorised-context-mlp"]


def _heads():
    torch.manual_seed(0)
    heads = [
        FlatIndexHead(16, D, n_context=3),
        FactorisedIndexHead(16, D, block_size=5, n_context=3),
        FlatIndexHead(16, D, n_context=3, context_width=6),
        FactorisedIndexHead(16, D, block_size=5, n_context=3, context_width=6),
    ]
    # the per-feature context weights start at zero; make them matter
    torch.nn.init.normal_(heads[1].context_offset)
    torch.nn.init.normal_(heads[2].context_proj[-1].weight)
    torch.nn.init.normal_(heads[3].context_offset)
    return heads


@pytest.mark.parametrize("head", _heads(), ids=HEAD_IDS)
def test_distribution_normalised_over_valid_ids(head):
    h = torch.randn(4, 16)
    last = torch.tensor([-1, 3, 10, 22])
    allowed = torch.ones(D, dtype=torch.bool)
    allowed[[5, 12, 13]] = False
    ids = torch.arange(D + 1)
    ctx = torch.randn(4, 3)
    with torch.no_grad():
        logp = torch.stack(
            [head.log_prob(h, ids[i].expand(4), last, allowed, ctx) for i in range(D + 1)], -1
        )
        other = head.log_prob(h, ids[:4], last, allowed, torch.randn(4, 3))
    assert not torch.allclose(other, logp[torch.arange(4), ids[:4]])  # the context matters
    probs = logp.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(4), rtol=1e-5, atol=1e-5)
    invalid = (ids[None, :D] <= last[:, None]) | ~allowed[None, :]
    assert (probs[:, :D][invalid] == 0).all()
    assert (probs[:, D] > 0).all()
    assert probs[3, D].item() == pytest.approx(1.0)  # nothing left after the last feature


@pytest.mark.parametrize(
    "head",
    [*_heads(), FactorisedIndexHead(16, D, block_size=5, n_context=3, current_block_hazard=True)],
    ids=[*HEAD_IDS, "factorised-current-block"],
)
def test_log_probs_is_log_prob_of_every_id(head):
    """The whole next-id distribution at once equals log_prob id by id, for (batch, length) states."""
    torch.manual_seed(1)
    h = torch.randn(2, 3, 16)
    last = torch.tensor([[-1, 4, 9], [0, 17, 22]])
    allowed = torch.ones(D, dtype=torch.bool)
    allowed[[5, 12, 13]] = False
    ctx = torch.randn(2, 1, 3)
    with torch.no_grad():
        every = head.log_probs(h, last, allowed, ctx)
        one_by_one = torch.stack(
            [head.log_prob(h, torch.full_like(last, i), last, allowed, ctx) for i in range(D + 1)],
            -1,
        )
    assert every.shape == (2, 3, D + 1)
    torch.testing.assert_close(every.exp(), one_by_one.exp(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(every.exp().sum(-1), torch.ones(2, 3), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head", _heads(), ids=HEAD_IDS)
def test_samples_respect_monotone_mask(head):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(500, 16)
    last = torch.randint(-1, D, (500,))
    allowed = torch.rand(D) > 0.3
    nxt = head.sample(h, last, allowed, generator=g)
    is_end = nxt == D
    assert ((nxt > last) | is_end).all()
    assert allowed[nxt[~is_end]].all()
    greedy = head.sample(h, last, allowed, greedy=True)
    assert ((greedy > last) | (greedy == D)).all()


def test_factorised_gradients_finite_at_end_targets():
    head = FactorisedIndexHead(16, D, block_size=5)
    h = torch.randn(3, 16, requires_grad=True)
    last = torch.tensor([22, 20, -1])
    target = torch.tensor([D, D, 4])
    head.log_prob(h, target, last).sum().backward()
    assert torch.isfinite(h.grad).all()


@pytest.mark.parametrize("head", _heads(), ids=HEAD_IDS)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sample_frequencies_match_log_prob(head, temperature):
    """Inversion (temperature 1) and Gumbel-max (otherwise) draw the head's distribution."""
    n = 40_000
    h = torch.randn(2, 16).repeat_interleave(n, 0)
    ctx = torch.randn(2, 3).repeat_interleave(n, 0)
    last = torch.tensor([-1, 7]).repeat_interleave(n)
    allowed = torch.ones(D, dtype=torch.bool)
    allowed[[2, 9, 15]] = False
    with torch.no_grad():
        ids = torch.arange(D + 1)
        logp = torch.stack(
            [head.log_prob(h[::n], ids[i].expand(2), last[::n], allowed, ctx[::n]) for i in ids],
            -1,
        )
        drawn = head.sample(
            h, last, allowed, ctx, generator=torch.Generator().manual_seed(3),
            temperature=temperature,
        )  # fmt: skip
    expected = torch.softmax(logp / temperature, -1)
    freq = torch.stack([torch.bincount(d, minlength=D + 1) for d in drawn.view(2, n)]) / n
    if isinstance(head, FactorisedIndexHead) and temperature != 1.0:
        expected = None  # tempered per level (block, then offset): not softmax(log p / T)
    if expected is not None:
        torch.testing.assert_close(freq, expected, atol=0.012, rtol=0)
    assert (freq[:, :D][:, ~allowed] == 0).all() and (freq[1, :8] == 0).all()


@pytest.mark.parametrize("head", _heads(), ids=HEAD_IDS)
def test_prepared_tables_give_same_samples(head):
    h, last = torch.randn(64, 16), torch.randint(-1, D, (64,))
    allowed = torch.rand(D) > 0.3
    with torch.no_grad():
        a = head.sample(h, last, allowed, generator=torch.Generator().manual_seed(0))
        tables = head.prepare(allowed, h.device)
        b = head.sample(h, last, generator=torch.Generator().manual_seed(0), tables=tables)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("positions", [(), (6,)], ids=["one-step", "sequence"])
def test_factorised_context_table_matches_per_token_contraction(positions):
    """Each position reads its own row's block of the context table (values and gradients)."""
    torch.manual_seed(1)
    head = FactorisedIndexHead(16, D, block_size=5, n_context=3)
    torch.nn.init.normal_(head.context_offset)
    torch.nn.init.normal_(head.offset_bias)
    h = torch.randn(4, *positions, 16)
    last = torch.randint(-1, D - 1, (4, *positions))
    block = torch.randint(0, head.n_blocks, (4, *positions))
    ctx = torch.randn(4, *([1] * len(positions)), 3)  # per row, as the decoder passes it
    tables = head.prepare(None, h.device)
    logits, _ = head._offset_logits(h, block, last, tables, head.context_terms(ctx))
    low_rank = head.context_rank(ctx).unsqueeze(-2)
    expected = (
        head.offset_proj(h + head.block_embedding(block))
        + head.offset_bias[block]
        + (head.context_offset[block] * low_rank).sum(-1)
    )
    torch.testing.assert_close(logits, expected)
    grad = torch.autograd.grad(logits.square().sum(), head.context_offset)[0]
    want = torch.autograd.grad(expected.square().sum(), head.context_offset)[0]
    torch.testing.assert_close(grad, want)


def test_context_mlp_terms_are_the_hidden_layer_read_by_per_feature_weights():
    """context_width > 0: both heads' context terms read silu(W c + b), not c."""
    torch.manual_seed(3)
    flat, fact = _heads()[2:]
    ctx = torch.randn(4, 3)
    hidden = torch.nn.functional.silu(flat.context_proj[0][0](ctx))
    torch.testing.assert_close(flat.context_terms(ctx)[0], hidden @ flat.context_proj[-1].weight.T)
    hidden = torch.nn.functional.silu(fact.context_rank[0](ctx))
    block, table = fact.context_terms(ctx)
    torch.testing.assert_close(block, hidden @ fact.context_block.weight.T)
    want = hidden @ fact.context_offset.view(-1, 6).T
    torch.testing.assert_close(table, want.view(4, fact.n_blocks, 5) + fact.offset_bias)


@pytest.mark.parametrize("kind", [FlatIndexHead, FactorisedIndexHead])
def test_context_mlp_per_feature_term_starts_at_zero(kind):
    """A fresh MLP context path adds nothing per feature (training starts at the hazard init)."""
    head = kind(16, D, n_context=3, context_width=6)
    terms = head.context_terms(torch.randn(5, 3))
    if kind is FlatIndexHead:
        assert (terms[0] == 0).all()
    else:
        assert (terms[1] == head.offset_bias).all()


@pytest.mark.parametrize("width", [-1, 2.5, True])
@pytest.mark.parametrize("kind", ["flat", "factorised"])
def test_bad_context_width_is_refused(width, kind):
    """Through make_index_head and when a head is built directly."""
    from sc_sed.nn._heads import make_index_head

    with pytest.raises(ValueError, match="context_width must be a non-negative integer"):
        make_index_head(kind, 16, D, 5, 3, context_width=width)
    head = FlatIndexHead if kind == "flat" else FactorisedIndexHead
    with pytest.raises(ValueError, match="context_width must be a non-negative integer"):
        head(16, D, n_context=3, context_width=width)


@pytest.mark.parametrize("rank", [0, -2, 2.5, True])
def test_bad_context_rank_is_refused(rank):
    from sc_sed.nn._heads import make_index_head

    with pytest.raises(ValueError, match="context_rank must be a positive integer"):
        make_index_head("factorised", 16, D, 5, 3, context_rank=rank)
    with pytest.raises(ValueError, match="context_rank must be a positive integer"):
        FactorisedIndexHead(16, D, block_size=5, n_context=3, context_rank=rank)


@pytest.mark.parametrize("width", [0, 6])
@pytest.mark.parametrize("kind", [FlatIndexHead, FactorisedIndexHead])
def test_context_features_are_what_the_per_feature_weights_read(kind, width):
    """The features other heads share: the hidden layer, the rank map, or the context itself."""
    torch.manual_seed(4)
    head = kind(16, D, n_context=3, context_width=width)
    ctx = torch.randn(5, 3)
    features = head.context_features(ctx)
    assert features.shape == (5, head.n_context_features)
    if kind is FlatIndexHead:
        expected = ctx if not width else torch.nn.functional.silu(head.context_proj[0][0](ctx))
        weight = head.context_proj[-1].weight if width else head.context_proj.weight
        torch.testing.assert_close(head.context_terms(ctx)[0], features @ weight.T)
    else:
        torch.testing.assert_close(head.context_terms(ctx)[0], (features if width else ctx) @ head.context_block.weight.T)
        expected = head.context_rank(ctx)
    torch.testing.assert_close(features, expected)
    assert head.context_features(None) is None
    assert kind(16, D).context_features(ctx) is None and kind(16, D).n_context_features == 0
