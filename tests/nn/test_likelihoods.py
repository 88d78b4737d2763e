import math

import pytest
import torch

from sc_sed.nn import ValueHead, sample_gamma


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
