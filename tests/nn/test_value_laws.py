"""The bounded value laws of ValueHead: "categorical" (a vocabulary) and "logcount"."""

from __future__ import annotations

import pytest
import torch

from sc_sed.nn import ValueHead

HALF_STARS = torch.arange(1, 11, dtype=torch.float32) / 2


def _params(n: int, n_out: int, scale: float = 3.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, n_out, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("max_value", [1.0, 7.0, 1e6])
@pytest.mark.parametrize(("location", "log_scale"), [(0.0, -1.0), (6.0, 0.5), (14.0, 2.0)])
def test_logcount_probabilities_sum_to_one(max_value, location, log_scale):
    head = ValueHead(8, "logcount", max_value=max_value)
    x = torch.arange(1, int(max_value) + 1, dtype=torch.float64)
    params = torch.tensor([location, log_scale]).expand(x.numel(), 2)
    total = torch.logsumexp(-head.nll(params, x).double(), 0).exp()
    assert total.item() == pytest.approx(1.0, abs=1e-6)


def test_categorical_probabilities_sum_to_one_over_the_vocabulary():
    head = ValueHead(8, "categorical", vocabulary=HALF_STARS)
    params = _params(5, len(HALF_STARS))
    probs = torch.stack([(-head.nll(params, v.expand(5))).exp() for v in HALF_STARS])
    torch.testing.assert_close(probs.sum(0), torch.ones(5))


def test_logcount_draws_follow_the_likelihood():
    """The sampler's discretisation is the likelihood's: frequencies match P(x)."""
    head = ValueHead(8, "logcount", max_value=1000.0)
    n = 200_000
    params = torch.tensor([1.2, -0.7]).expand(n, 2)
    draws = head.sample(params, generator=torch.Generator().manual_seed(1))
    for k in (1, 2, 3, 5, 10):
        expected = (-head.nll(params[:1], torch.tensor([float(k)]))).exp().item()
        observed = (draws == k).double().mean().item()
        assert observed == pytest.approx(expected, abs=4 * (expected / n) ** 0.5 + 1e-4)


def test_logcount_generates_integers_in_range_even_for_extreme_parameters():
    head = ValueHead(8, "logcount", max_value=1e7)
    extreme = torch.tensor([[1e4, 50.0], [-1e4, -50.0], [1e4, -50.0], [0.0, 50.0], [30.0, 2.0]])
    params = extreme.repeat(2000, 1)
    for greedy in (False, True):
        x = head.sample(params, generator=torch.Generator().manual_seed(0), greedy=greedy)
        assert torch.isfinite(x).all()
        assert (x >= 1).all() and (x <= 1e7).all()
        assert (x == torch.round(x)).all()
    assert torch.isfinite(head.nll(params, torch.full((len(params),), 1e7))).all()


def test_categorical_generates_only_vocabulary_values():
    head = ValueHead(8, "categorical", vocabulary=HALF_STARS)
    params = _params(4000, len(HALF_STARS), scale=0.5)
    for greedy in (False, True):
        x = head.sample(params, generator=torch.Generator().manual_seed(0), greedy=greedy)
        assert torch.isin(x, HALF_STARS).all()
    x = head.sample(params, generator=torch.Generator().manual_seed(0))
    assert torch.unique(x).numel() == len(HALF_STARS)  # and all of them can appear


def test_values_outside_the_support_are_an_error():
    cat = ValueHead(8, "categorical", vocabulary=HALF_STARS)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        cat.nll(_params(2, len(HALF_STARS)), torch.tensor([1.0, 1.25]))
    log = ValueHead(8, "logcount", max_value=100.0)
    with pytest.raises(ValueError, match="outside the support"):
        log.nll(_params(2, 2), torch.tensor([3.0, 101.0]))
    with pytest.raises(ValueError, match="outside the support"):
        log.nll(_params(2, 2), torch.tensor([3.0, 2.5]))
    with pytest.raises(ValueError, match="needs a vocabulary"):
        ValueHead(8, "categorical")
    with pytest.raises(ValueError, match="max_value"):
        ValueHead(8, "logcount", max_value=2.0**25)


def test_categorical_latent_term_moves_a_row_up_the_vocabulary():
    head = ValueHead(8, "categorical", n_features=3, latent_term="tied", vocabulary=HALF_STARS)
    with torch.no_grad():
        head.context_weight.fill_(1.0)
    h = torch.zeros(2, 8)
    feature = torch.tensor([1, 1])
    params = head(h, h, feature, torch.tensor([-2.0, 2.0]))
    mean = (params.softmax(-1) * HALF_STARS).sum(-1)
    assert mean[1] > mean[0] + 0.5


def test_support_buffers_are_saved_with_the_weights():
    cat = ValueHead(8, "categorical", vocabulary=HALF_STARS)
    log = ValueHead(8, "logcount", max_value=1234.0)
    assert torch.equal(cat.state_dict()["vocabulary"], HALF_STARS)
    assert log.state_dict()["max_value"].item() == 1234.0
    other = ValueHead(8, "categorical", vocabulary=HALF_STARS * 2)
    other.load_state_dict(cat.state_dict())
    assert torch.equal(other.vocabulary, HALF_STARS)
    assert other.fill_value == 0.5
    wider = ValueHead(8, "logcount", max_value=10.0)
    wider.load_state_dict(log.state_dict())
    x = wider.sample(torch.tensor([[30.0, 2.0]]).expand(500, 2))
    assert x.max() > 10  # the loaded bound, not the one it was built with
