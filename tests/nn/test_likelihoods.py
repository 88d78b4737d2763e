import math

import pytest
import torch

from sc_sed.nn import ValueHead, sample_gamma
from sc_sed.nn._likelihoods import TIED_TERM_BOUND


@pytest.mark.parametrize("lik", ["ztnb", "ztpoisson"])
def test_count_likelihood_normalised_on_positive_integers(lik):
    head = ValueHead(4, lik)
    params = torch.tensor([[math.log(2.5), math.log(3.0)]])[:, : 1 if lik == "ztpoisson" else 2]
    ks = torch.arange(1, 400, dtype=torch.float32)
    p = torch.exp(-head.nll(params.expand(len(ks), -1), ks))
    assert p.sum().item() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("lik", ["ztnb", "ztpoisson"])
def test_count_samples_are_integers_at_least_one(lik):
    head = ValueHead(4, lik)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(2000, 2 if lik == "ztnb" else 1) * 2
    x = head.sample(params, generator=g)
    assert (x >= 1).all()
    assert torch.equal(x, x.round())
    assert (head.sample(params, greedy=True) >= 1).all()


@pytest.mark.parametrize(("mu", "theta"), [(2.0, 1.5), (0.05, 0.8), (60.0, 3.0)])
def test_ztnb_sample_mean_matches_truncated_mean(mu, theta):
    head = ValueHead(4, "ztnb")
    params = torch.tensor([[math.log(mu), math.log(theta)]]).expand(40000, -1)
    x = head.sample(params, generator=torch.Generator().manual_seed(1))
    p0 = (theta / (theta + mu)) ** theta
    assert x.mean().item() == pytest.approx(mu / (1 - p0), rel=0.03)
    assert (x >= 1).all()


def test_ztpoisson_sample_frequencies_match_pmf():
    head = ValueHead(4, "ztpoisson")
    rate = 0.7
    x = head.sample(
        torch.full((50000, 1), math.log(rate)), generator=torch.Generator().manual_seed(2)
    )
    for k in (1, 2, 3):
        pmf = math.exp(-rate) * rate**k / math.factorial(k) / (1 - math.exp(-rate))
        assert (x == k).float().mean().item() == pytest.approx(pmf, abs=0.01)


def test_lognormal_positive_and_seeded():
    head = ValueHead(4, "lognormal")
    params = torch.randn(100, 2)
    a = head.sample(params, generator=torch.Generator().manual_seed(3))
    b = head.sample(params, generator=torch.Generator().manual_seed(3))
    assert (a > 0).all() and torch.equal(a, b)


def test_gamma_sampler_moments():
    alpha = torch.tensor([0.5, 2.0, 9.0]).repeat(30000)
    x = sample_gamma(alpha, torch.Generator().manual_seed(0)).view(30000, 3)
    torch.testing.assert_close(x.mean(0), torch.tensor([0.5, 2.0, 9.0]), rtol=0.03, atol=0.0)


def test_unknown_likelihood_raises():
    with pytest.raises(ValueError, match="value_likelihood"):
        ValueHead(4, "poisson")


def test_gamma_sampler_without_sync_matches_moments():
    alpha = torch.tensor([0.5, 2.0, 9.0]).repeat(30000)
    x = sample_gamma(alpha, torch.Generator().manual_seed(0), max_rounds=8, sync=False)
    torch.testing.assert_close(
        x.view(30000, 3).mean(0), torch.tensor([0.5, 2.0, 9.0]), rtol=0.03, atol=0.0
    )


@pytest.mark.parametrize(("mu", "theta"), [(2.0, 1.5), (40.0, 5.0)])
def test_ztnb_sample_frequencies_match_pmf(mu, theta):
    head = ValueHead(4, "ztnb")
    params = torch.tensor([[math.log(mu), math.log(theta)]])
    x = head.sample(params.expand(50000, -1), generator=torch.Generator().manual_seed(4))
    ks = torch.tensor([1.0, 2.0, 5.0, 40.0, 60.0])
    pmf = torch.exp(-head.nll(params.expand(len(ks), -1), ks))
    freq = torch.stack([(x == k).float().mean() for k in ks])
    torch.testing.assert_close(freq, pmf, atol=0.006, rtol=0)


def test_value_locations_give_the_mean_nonzero_value():
    from sc_sed.nn import value_locations

    n = torch.tensor([4.0, 10.0, 3.0, 0.0])
    total = torch.tensor([4.0, 25.0, 300.0, 0.0])  # mean non-zero 1, 2.5, 100, unseen
    log_total = torch.tensor([0.0, 8.0, 12.0, 0.0])
    mu = value_locations("ztpoisson", n, total, log_total).double().exp()
    truncated_mean = mu / -torch.expm1(-mu)
    torch.testing.assert_close(truncated_mean[1:3], torch.tensor([2.5, 100.0], dtype=torch.float64))
    assert mu[0] < 1e-3  # all ones: a rate near 0 (clamped, finite)
    torch.testing.assert_close(value_locations("lognormal", n, total, log_total)[1], torch.tensor(0.8))
    torch.testing.assert_close(value_locations("gaussian", n, total, log_total)[2], torch.tensor(100.0))
    assert all(value_locations(lik, n, total, log_total)[3] == 0 for lik in ("ztnb", "gaussian"))


@pytest.mark.parametrize("term", ["free", "tied"])
def test_per_feature_value_terms_by_hand(term):
    """params = MLP(h, e) + bias_j, plus the latent term on the location only."""
    torch.manual_seed(0)
    head = ValueHead(8, "ztnb", n_features=5, latent_term=term, n_context=3)
    torch.nn.init.normal_(head.feature_bias)
    torch.nn.init.normal_(head.context_weight)
    h, e = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    feature = torch.tensor([[0, 1, 4, 2], [3, 3, 0, 1]])
    # free: per-row context features; tied: one detection term per chosen feature
    context = torch.randn(2, 1, 3) if term == "free" else torch.randn(2, 4)
    got = head(h, e, feature, context)
    want = head(h, e) + head.feature_bias[feature]
    if term == "free":
        want[..., 0] += (head.context_weight[feature] * context).sum(-1)
    else:  # the detection term is softly bounded (tanh) before its per-feature scale
        bound = TIED_TERM_BOUND
        want[..., 0] += head.context_weight[feature] * bound * torch.tanh(context / bound)
    torch.testing.assert_close(got, want)
    # a fresh head: the latent term is zero, so rows differ only through h
    fresh = ValueHead(8, "ztnb", n_features=5, latent_term=term, n_context=3)
    torch.testing.assert_close(fresh(h, e, feature, context), fresh(h, e, feature, -context))


def test_init_locations_sets_the_location_of_an_untrained_head():
    torch.manual_seed(1)
    head = ValueHead(8, "ztpoisson", n_features=3)
    torch.nn.init.zeros_(head.mlp[-1].weight)  # the output is then the bias alone
    head.init_locations(torch.tensor([0.5, -1.0, 2.0]))
    params = head(torch.randn(3, 8), torch.randn(3, 8), torch.tensor([0, 1, 2]))
    torch.testing.assert_close(params[:, 0], torch.tensor([0.5, -1.0, 2.0]))
    with pytest.raises(ValueError, match="a latent term needs n_features"):
        ValueHead(8, "ztnb", latent_term="tied")
    with pytest.raises(ValueError, match="'free' needs n_context"):
        ValueHead(8, "ztnb", n_features=3, latent_term="free")
    with pytest.raises(ValueError, match="Unknown value latent term"):
        ValueHead(8, "ztnb", n_features=3, latent_term="shared")
    with pytest.raises(RuntimeError, match="init_locations needs"):
        ValueHead(8, "ztnb").init_locations(torch.zeros(3))


@pytest.mark.parametrize("lik", ["ztnb", "ztpoisson", "lognormal"])
def test_out_of_range_parameters_still_get_a_gradient(lik):
    """The clamps keep the gradient: a log-mean far above the range is pushed back down."""
    head = ValueHead(4, lik)
    params = torch.tensor([[30.0, 0.0]] if lik != "ztpoisson" else [[30.0]], requires_grad=True)
    head.nll(params, torch.tensor([1.0])).sum().backward()
    assert params.grad[0, 0] > 0  # gradient descent lowers the location
    clamped = torch.tensor([[12.0, 0.0]] if lik != "ztpoisson" else [[12.0]])
    if lik == "lognormal":
        clamped = params.detach()  # the log-normal location is not clamped
    torch.testing.assert_close(head.nll(params.detach(), torch.tensor([1.0])), head.nll(clamped, torch.tensor([1.0])))


def test_tied_term_is_bounded_for_extreme_detection_terms():
    """An overconfident detection term (logit -30) cannot push a value location to e^14."""
    head = ValueHead(4, "ztnb", n_features=2, latent_term="tied")
    with torch.no_grad():
        head.context_weight.fill_(-0.5)
    h = e = torch.zeros(2, 4)
    feature = torch.tensor([0, 1])
    low = head(h, e, feature, torch.tensor([-30.0, 0.1]))[..., 0] - head(h, e, feature)[..., 0]
    assert low[0] <= 0.5 * TIED_TERM_BOUND
    torch.testing.assert_close(low[1], torch.tensor(-0.05), atol=1e-4, rtol=0)  # ~linear near 0
