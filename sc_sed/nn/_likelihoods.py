"""Value likelihoods for the non-zero entries, and seeded samplers for them.

A value is only ever generated for an emitted (non-zero) entry, so count likelihoods are
zero-truncated: they put no mass on 0 and generate integers >= 1.
"""

from __future__ import annotations

from typing import Literal

import torch
from scvi.distributions import NegativeBinomial
from torch import nn
from torch.distributions import Distribution, LogNormal, Normal, Poisson

from ._numeric import log1mexp

ValueLikelihood = Literal["ztnb", "ztpoisson", "lognormal", "gaussian"]


def sample_gamma(
    concentration: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    max_rounds: int = 64,
    sync: bool = True,
) -> torch.Tensor:
    """Gamma(concentration, 1) draws from an explicit generator (Marsaglia–Tsang).

    ``torch.distributions.Gamma`` cannot take a generator, so seeded generation needs this.

    Parameters
    ----------
    concentration
        Positive shape parameters.
    generator
        Source of randomness.
    max_rounds
        Most rejection rounds (each accepts with probability >= 0.95 per element).
    sync
        Stop as soon as every element is accepted (one host-device sync per round). With
        False all ``max_rounds`` rounds run without asking the device anything (use a
        small ``max_rounds``, e.g. 8: an element then fails with probability < 1e-10).

    Returns
    -------
    Samples of the same shape.
    """
    boost = concentration < 1
    alpha = torch.where(boost, concentration + 1, concentration)
    d = alpha - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.zeros_like(alpha)
    todo = torch.ones_like(alpha, dtype=torch.bool)
    for _ in range(max_rounds):
        x = torch.randn(alpha.shape, generator=generator, device=alpha.device)
        u = torch.rand(alpha.shape, generator=generator, device=alpha.device)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (
            torch.log(u.clamp_min(1e-30))
            < 0.5 * x**2 + d - d * v + d * torch.log(v.clamp_min(1e-30))
        )
        out = torch.where(todo & ok, d * v, out)
        todo = todo & ~ok
        if sync and not bool(todo.any()):
            break
    out = torch.where(todo, d, out)  # practically never reached; fall back to the mode
    u = torch.rand(alpha.shape, generator=generator, device=alpha.device)
    return torch.where(boost, out * u.clamp_min(1e-30) ** (1.0 / concentration), out)


class ValueHead(nn.Module):
    """Parameters of the value distribution from the hidden state and the chosen index.

    Parameters
    ----------
    n_hidden
        Width of the decoder hidden state (and of the index embedding).
    likelihood
        ``"ztnb"`` (zero-truncated negative binomial, counts), ``"ztpoisson"``
        (zero-truncated Poisson, counts), ``"lognormal"`` (positive reals) or
        ``"gaussian"`` (real values).
    """

    def __init__(self, n_hidden: int, likelihood: ValueLikelihood = "ztnb"):
        super().__init__()
        if likelihood not in ("ztnb", "ztpoisson", "lognormal", "gaussian"):
            msg = (
                f"Unknown value_likelihood={likelihood!r}; use 'ztnb', 'ztpoisson', "
                "'lognormal', 'gaussian' or 'auto'."
            )
            raise ValueError(msg)
        self.likelihood = likelihood
        n_out = 1 if likelihood == "ztpoisson" else 2
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_hidden, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out)
        )

    def forward(self, h: torch.Tensor, index_embedding: torch.Tensor) -> torch.Tensor:
        """``(..., n_params)`` raw distribution parameters (float32, also under autocast)."""
        return self.mlp(torch.cat([h, index_embedding], dim=-1)).float()

    def distribution(self, params: torch.Tensor) -> Distribution:
        """Return the untruncated value distribution (scvi-tools' NB with mu, theta; else torch's)."""
        if self.likelihood == "ztnb":
            log_mu, log_theta = params.unbind(-1)
            return NegativeBinomial(
                mu=log_mu.clamp(-12, 12).exp(), theta=log_theta.clamp(-8, 12).exp()
            )
        if self.likelihood == "ztpoisson":
            return Poisson(params[..., 0].clamp(-12, 12).exp(), validate_args=False)
        loc, log_scale = params.unbind(-1)
        family = LogNormal if self.likelihood == "lognormal" else Normal
        return family(loc, log_scale.clamp(-7, 5).exp(), validate_args=False)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the (non-zero) values ``x``; same shape as ``x``.

        Count likelihoods are zero-truncated: ``log p(x) - log(1 - p(0))``.
        Positions where ``x`` is not a valid non-zero value must be masked by the caller.
        """
        dist = self.distribution(params)
        if self.likelihood in ("ztnb", "ztpoisson"):
            return -(dist.log_prob(x) - log1mexp(dist.log_prob(torch.zeros_like(x))))
        if self.likelihood == "lognormal":
            x = x.clamp_min(1e-30)
        return -dist.log_prob(x)

    def sample(
        self,
        params: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        greedy: bool = False,
    ) -> torch.Tensor:
        """Draw values (integers >= 1 for count likelihoods).

        ``greedy`` returns a point estimate instead: the rounded mean of the truncated
        count distribution (at least 1), the median of the log-normal, the Gaussian mean.
        """
        if self.likelihood in ("lognormal", "gaussian"):
            loc, log_scale = params.unbind(-1)
            if not greedy:
                noise = torch.randn(loc.shape, generator=generator, device=loc.device)
                loc = loc + noise * log_scale.clamp(-7, 5).exp()
            return loc.exp() if self.likelihood == "lognormal" else loc
        if self.likelihood == "ztpoisson":
            rate = params[..., 0].clamp(-12, 12).exp()
            theta = None
        else:
            rate = params[..., 0].clamp(-12, 12).exp()
            theta = params[..., 1].clamp(-8, 12).exp()
        if greedy:
            log_p0 = (
                -rate if theta is None else theta * (torch.log(theta) - torch.log(theta + rate))
            )
            return torch.round(rate / -torch.expm1(log_p0)).clamp_min(1.0)
        return self._sample_truncated_counts(rate, theta, generator)

    @staticmethod
    def _sample_truncated_counts(rate, theta, generator, n_inverse: int = 48, n_tail: int = 16):
        """Zero-truncated NB (``theta`` given) or Poisson counts, with no host-device sync on GPU.

        A vectorised inverse-CDF lookup over ``k = 1..n_inverse`` (float64, from
        ``u ~ U(P(0), 1)``) handles the common small values whatever ``P(0)`` is; the
        probabilities come from the ratio ``P(k) / P(k - 1)`` (a cumulative sum of logs
        instead of three ``lgamma`` tables). The few larger draws take the first of
        ``n_tail`` proposals of the untruncated law that exceeds ``n_inverse`` (rejection
        sampling done as one batched draw), which accepts quickly because such rows put
        real mass there; rows with no accepted proposal take the boundary value. On a CPU
        the proposals are skipped when no row needs them (a free check there).
        """
        r = rate.double().unsqueeze(-1)
        k = torch.arange(1, n_inverse + 1, device=r.device, dtype=torch.float64)
        if theta is None:
            log_p0 = -r
            log_ratio = torch.log(r) - torch.log(k)  # P(k) / P(k - 1) = r / k
        else:
            th = theta.double().unsqueeze(-1)
            log_q = torch.log(r) - torch.log(r + th)
            log_p0 = th * (torch.log(th) - torch.log(r + th))
            log_ratio = torch.log(k - 1 + th) - torch.log(k) + log_q
        p0 = torch.exp(log_p0)
        u = torch.rand(p0.shape, generator=generator, device=r.device, dtype=torch.float64)
        cdf = p0 + torch.cumsum(torch.exp(log_p0 + torch.cumsum(log_ratio, dim=-1)), dim=-1)
        below = (cdf < p0 + u * (1 - p0)).sum(-1)
        out = torch.where(below < n_inverse, below + 1, 0).to(torch.float64)
        in_tail = out == 0
        if rate.device.type == "cpu" and not bool(in_tail.any()):
            return out.to(rate.dtype)
        lam = rate.unsqueeze(-1).expand(*rate.shape, n_tail)
        if theta is not None:
            shape = theta.unsqueeze(-1).expand_as(lam)
            lam = sample_gamma(shape, generator, max_rounds=8, sync=False) * lam / shape
        draw = torch.poisson(lam, generator=generator).double()
        accept = draw > n_inverse
        first = torch.where(accept, draw, 0.0).gather(-1, accept.long().argmax(-1, keepdim=True))
        tail = torch.where(accept.any(-1), first.squeeze(-1), float(n_inverse))
        return torch.where(in_tail, tail, out).to(rate.dtype)
