"""Value likelihoods for the non-zero entries, and seeded samplers for them.

A value is only ever generated for an emitted (non-zero) entry, so count likelihoods are
zero-truncated: they put no mass on 0 and generate integers >= 1.

Two laws have a finite or bounded support that the data set: ``"categorical"`` (one
logit per distinct value of the training data, its *vocabulary*) and ``"logcount"`` (a
discretised logistic on ``log x`` over the integers ``1 .. max_value``). Both keep their
support in module buffers, so a saved and loaded model generates the same values.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from scvi.distributions import NegativeBinomial
from torch import nn
from torch.distributions import Categorical, Distribution, LogNormal, Normal, Poisson
from torch.nn import functional as F

from ._numeric import log1mexp

ValueLikelihood = Literal["ztnb", "ztpoisson", "lognormal", "gaussian", "categorical", "logcount"]
#: Every value likelihood, in the order the messages list them.
VALUE_LIKELIHOODS = ("ztnb", "ztpoisson", "lognormal", "gaussian", "categorical", "logcount")
#: Bounds of ``log s``, the scale of the ``"logcount"`` logistic on the log scale.
LOGCOUNT_LOG_SCALE = (-5.0, 2.0)


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


#: Bound on the detection term a tied value term reads (odds ratios beyond e^8 saturate).
TIED_TERM_BOUND = 8.0


def soft_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``bound · tanh(x / bound)``: ``x`` near 0, smoothly limited to ``(-bound, bound)``."""
    return bound * torch.tanh(x / bound)


def clamp_through(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``x.clamp(low, high)`` in the forward pass, the identity's gradient in the backward.

    A plain clamp gives a parameter that left the range no gradient, so it can never come
    back: a log-mean stuck above the range keeps generating counts of ``e^high`` where the
    data have ones (seen with a latent term on the value location). The values, and
    hence trained models' outputs, are those of the plain clamp.
    """
    return x + (x.clamp(low, high) - x).detach()


def value_locations(
    likelihood: ValueLikelihood,
    n_detected: torch.Tensor,
    value_sum: torch.Tensor,
    log_value_sum: torch.Tensor,
) -> torch.Tensor:
    """Per-feature starting location of the value law from training sums over non-zeros.

    Parameters
    ----------
    likelihood
        The value likelihood.
    n_detected
        ``(D,)`` number of non-zero entries of each feature.
    value_sum, log_value_sum
        ``(D,)`` sums of the non-zero values and of their logs (``log |value|``).

    Returns
    -------
    ``(D,)`` float32: for counts the log-rate ``log mu`` of the zero-truncated Poisson
    whose mean is the feature's mean non-zero value (solved by Newton's method, from
    above, on ``mu = m (1 - exp(-mu))``); for ``"lognormal"`` and ``"logcount"`` the mean
    log value; for ``"gaussian"`` the mean value; for ``"categorical"`` zeros (its class
    logits start at the training frequencies instead). Features never non-zero get 0.
    """
    n = torch.as_tensor(n_detected, dtype=torch.float64)
    seen = n > 0
    mean = torch.where(seen, torch.as_tensor(value_sum, dtype=torch.float64) / n.clamp_min(1), 0.0)
    if likelihood == "gaussian":
        return mean.float()
    if likelihood == "categorical":
        return torch.zeros_like(n, dtype=torch.float32)
    if likelihood in ("lognormal", "logcount"):
        log_sum = torch.as_tensor(log_value_sum, dtype=torch.float64)
        return torch.where(seen, log_sum / n.clamp_min(1), 0.0).float()
    m = mean.clamp_min(1 + 1e-4)
    mu = m.clone()  # f(mu) = mu - m (1 - e^-mu) is convex: Newton from the right converges
    for _ in range(60):
        mu = (mu - (mu - m * -torch.expm1(-mu)) / (1 - m * torch.exp(-mu))).clamp_min(1e-8)
    return torch.where(seen, torch.log(mu), 0.0).clamp(-10.0, 10.0).float()


ValueLatentTerm = Literal["none", "tied", "free"]


class ValueHead(nn.Module):
    """Parameters of the value distribution from the hidden state and the chosen index.

    An MLP reads the hidden state and the embedding of the chosen feature. With
    ``n_features`` each feature also gets its own offset of every parameter (e.g. a
    gene's typical count and its own dispersion) and, with a ``latent_term``, a per-row
    term on its location, the direct path from the latent to "how much of feature ``j``"
    that scVI's decoder has (without it the location depends on the row only through the
    decoder's hidden state; ``benchmarks/README.md``, "What did not work"):

    * ``"tied"``: ``a_j · s_j``, with ``s_j`` the latent's term on feature ``j``'s
      detection logit in the index head (:meth:`~sc_sed.nn.IndexHead.feature_terms`) and
      one learned scale ``a_j`` per feature: one per-row score of each feature drives both
      whether it is detected and how large it is, as one rate does in a negative binomial;
    * ``"free"``: ``w_j · c`` for the row's context features ``c``
      (:meth:`~sc_sed.nn.IndexHead.context_features`), ``n_context`` weights per feature.

    The latent terms start at zero. For ``"categorical"`` the latent term moves every
    class logit by the term times a learned per-class slope (starting evenly spaced
    from -1 to 1 over the sorted vocabulary), so a row's score shifts its values up or
    down the vocabulary.

    Parameters
    ----------
    n_hidden
        Width of the decoder hidden state (and of the index embedding).
    likelihood
        ``"ztnb"`` (zero-truncated negative binomial, counts), ``"ztpoisson"``
        (zero-truncated Poisson, counts), ``"lognormal"`` (positive reals),
        ``"gaussian"`` (real values), ``"categorical"`` (one of the ``vocabulary``
        values, e.g. ratings) or ``"logcount"`` (counts spanning orders of magnitude:
        ``P(1) = F(log 1.5) / F(T)`` and ``P(x) = (F(log(x + 0.5)) - F(log(x - 0.5))) /
        F(T)`` for ``2 <= x <= max_value``, ``F`` the logistic CDF with the token's
        location and scale, ``T = log(max_value + 0.5)``; the location is softly bounded
        to ``(-1, T + 1)``).
    n_features
        Number of features for the per-feature parameters (0: none, and no latent term).
    latent_term
        ``"none"``, ``"tied"`` or ``"free"`` (see above; needs ``n_features``).
    n_context
        Size of the context features of a ``"free"`` latent term.
    vocabulary
        ``"categorical"`` only: the sorted distinct non-zero values (kept as a buffer).
    vocabulary_counts
        ``"categorical"`` only, optional: how often each vocabulary value occurs in the
        training data; the class logits start at their log frequencies.
    max_value
        ``"logcount"`` only: the largest value the law can produce (kept as a buffer);
        larger training values are an error.
    """

    def __init__(
        self,
        n_hidden: int,
        likelihood: ValueLikelihood = "ztnb",
        n_features: int = 0,
        latent_term: ValueLatentTerm = "none",
        n_context: int = 0,
        vocabulary: torch.Tensor | None = None,
        vocabulary_counts: torch.Tensor | None = None,
        max_value: float | None = None,
    ):
        super().__init__()
        if likelihood not in VALUE_LIKELIHOODS:
            msg = (
                f"Unknown value_likelihood={likelihood!r}; use one of {VALUE_LIKELIHOODS} "
                "or 'auto'."
            )
            raise ValueError(msg)
        if latent_term not in ("none", "tied", "free"):
            msg = f"Unknown value latent term {latent_term!r}; use 'none', 'tied' or 'free'."
            raise ValueError(msg)
        if latent_term != "none" and not n_features:
            raise ValueError("ValueHead: a latent term needs n_features (per-feature weights).")
        if latent_term == "free" and not n_context:
            raise ValueError("ValueHead: latent_term='free' needs n_context > 0.")
        self.likelihood = likelihood
        self.latent_term = latent_term
        n_out = self._support(likelihood, vocabulary, max_value)
        self.register_load_state_dict_post_hook(ValueHead._support_loaded)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_hidden, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out)
        )
        self.feature_bias = self.context_weight = self.class_slope = None
        if n_features:
            self.feature_bias = nn.Parameter(torch.zeros(n_features, n_out))
        if latent_term == "tied":
            self.context_weight = nn.Parameter(torch.zeros(n_features))
        elif latent_term == "free":
            self.context_weight = nn.Parameter(torch.zeros(n_features, n_context))
        if likelihood == "categorical":
            if latent_term != "none":
                self.class_slope = nn.Parameter(torch.linspace(-1.0, 1.0, n_out))
            if vocabulary_counts is not None:
                with torch.no_grad():
                    freq = torch.as_tensor(vocabulary_counts, dtype=torch.float32) + 1.0
                    self.mlp[-1].bias.copy_(torch.log(freq / freq.sum()))

    def _support(self, likelihood: str, vocabulary, max_value) -> int:
        """Register the support buffers of the bounded laws; return the number of parameters."""
        if likelihood == "categorical":
            if vocabulary is None or len(vocabulary) == 0:
                raise ValueError("ValueHead: likelihood='categorical' needs a vocabulary.")
            values = np.asarray(vocabulary, dtype=np.float32).ravel()  # checked on the host
            if not (np.diff(values) > 0).all() or not np.isfinite(values).all():
                raise ValueError("ValueHead: the vocabulary must be finite and strictly increasing.")
            self.register_buffer("vocabulary", torch.as_tensor(values))
            self._fill = float(values[0])
            return values.size
        if likelihood == "logcount":
            if max_value is None or not 1 <= float(max_value) <= 2**24:
                msg = f"ValueHead: likelihood='logcount' needs 1 <= max_value <= 2**24, got {max_value}."
                raise ValueError(msg)
            # the buffer saves it with the weights; the float serves the arithmetic, so that
            # sampling never reads a device tensor back (no sync, CUDA-graph safe)
            self.register_buffer("max_value", torch.tensor(float(max_value)))
            self._top = float(max_value)
        return 1 if likelihood == "ztpoisson" else 2

    @staticmethod
    def _support_loaded(module: ValueHead, incompatible_keys) -> None:
        """After loading weights, read the support's host copies from the loaded buffers."""
        buffer = getattr(module, "vocabulary", getattr(module, "max_value", None))
        if buffer is None or buffer.device.type == "meta":
            return
        if module.likelihood == "categorical":
            module._fill = float(buffer[0])
        else:
            module._top = float(buffer)

    @property
    def fill_value(self) -> float:
        """A value in the support, to put where the caller masks the likelihood out."""
        return self._fill if self.likelihood == "categorical" else 1.0

    @torch.no_grad()
    def init_locations(self, location: torch.Tensor) -> None:
        """Start each feature's location parameter at ``location`` (``(n_features,)``).

        The location is the log-mean of the untruncated count law, the mean of the log
        (log-normal) or the mean (Gaussian); see :func:`value_locations`. The MLP's own
        output bias is subtracted, so an untrained head predicts about these values.
        """
        if self.feature_bias is None:
            raise RuntimeError("init_locations needs a ValueHead built with n_features.")
        if self.likelihood == "categorical":
            return  # the class logits start at the vocabulary frequencies
        location = torch.as_tensor(location, dtype=torch.float32).to(self.feature_bias.device)
        if self.likelihood == "logcount":  # the raw location the soft bound maps there
            centre, radius = self._location_range()
            ratio = ((location - centre) / radius).clamp(-0.99, 0.99)
            location = centre + radius * torch.atanh(ratio)
        self.feature_bias[:, 0] = location - self.mlp[-1].bias[0]

    def forward(
        self,
        h: torch.Tensor,
        index_embedding: torch.Tensor,
        feature: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(..., n_params)`` raw distribution parameters (float32, also under autocast).

        Parameters
        ----------
        h
            ``(..., n_hidden)`` hidden states.
        index_embedding
            ``(..., n_hidden)`` embeddings of the chosen features.
        feature
            ``(...)`` ids of the chosen features (``< n_features``), for the per-feature
            terms; None skips them.
        context
            What the latent term reads: ``"tied"``, the chosen features' detection terms
            (``feature``-shaped); ``"free"``, per-row context features broadcastable to
            ``(..., n_context)`` (e.g. ``(batch, 1, n_context)`` for ``(batch, length)``
            ids). None skips the term.
        """
        params = self.mlp(torch.cat([h, index_embedding], dim=-1)).float()
        if self.feature_bias is None or feature is None:
            return params
        params = params + self.feature_bias[feature]
        if self.context_weight is None or context is None:
            return params
        weight = self.context_weight[feature]
        if self.latent_term == "tied":
            location = weight * soft_bound(context.float(), TIED_TERM_BOUND)
        else:
            location = (weight * context.float()).sum(-1)
        if self.class_slope is not None:
            return params + location.unsqueeze(-1) * self.class_slope
        return torch.cat([params[..., :1] + location.unsqueeze(-1), params[..., 1:]], dim=-1)

    def _location_range(self) -> tuple[float, float]:
        """``"logcount"``: centre and radius of the soft bound ``(-1, T + 1)`` of the location."""
        top = math.log(self._top + 0.5)
        return top / 2, top / 2 + 1

    def _logcount_params(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``"logcount"``: (location, scale) in float64, the location softly bounded."""
        centre, radius = self._location_range()
        raw, log_scale = params.double().unbind(-1)
        location = centre + radius * torch.tanh((raw - centre) / radius)
        return location, clamp_through(log_scale, *LOGCOUNT_LOG_SCALE).exp()

    def _logcount_log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log P(x)`` of the truncated discretised logistic, stable for any ``x`` (float64)."""
        mu, s = self._logcount_params(params)
        x = x.double()
        hi = (torch.log(x + 0.5) - mu) / s
        lo = (torch.log((x - 0.5).clamp_min(0.5)) - mu) / s
        # F(hi) - F(lo) = F(hi) F(-lo) (1 - exp(-(hi - lo))), with hi - lo = log((x+.5)/(x-.5))/s
        width = -torch.log1p(-1.0 / (x + 0.5).clamp_min(1.5)) / s
        width = width.clamp_min(1e-300)  # log(1 - e^-w), exact also for tiny w (float64)
        gap = torch.where(
            width < math.log(2), torch.log(-torch.expm1(-width)), torch.log1p(-torch.exp(-width))
        )
        inner = F.logsigmoid(hi) + F.logsigmoid(-lo) + gap
        log_p = torch.where(x < 1.5, F.logsigmoid(hi), inner)
        top = (math.log(self._top + 0.5) - mu) / s
        return log_p - F.logsigmoid(top)

    def _check_support(self, x: torch.Tensor) -> None:
        """Raise when a value lies outside a bounded law's support (one host-device sync)."""
        if self.likelihood == "categorical":
            vocab = self.vocabulary
            pos = torch.searchsorted(vocab, x.float().contiguous()).clamp_max(vocab.numel() - 1)
            bad = vocab[pos] != x
            if bool(bad.any()):
                value = float(x[bad][0])
                msg = (
                    f"The value {value!r} is not in the vocabulary of this categorical value "
                    f"model ({vocab.numel()} values from {float(vocab[0])} to "
                    f"{float(vocab[-1])}). Train on data with the training values, or set the "
                    "model up with another value_likelihood (e.g. 'lognormal')."
                )
                raise ValueError(msg)
        elif self.likelihood == "logcount":
            bad = (x < 1) | (x > self._top) | (x != torch.round(x))
            if bool(bad.any()):
                msg = (
                    f"The value {float(x[bad][0])!r} is outside the support of this logcount "
                    f"model (integers 1 to {int(self._top)}, ten times the largest "
                    "registered value). Register data that include the largest values."
                )
                raise ValueError(msg)

    def distribution(self, params: torch.Tensor) -> Distribution:
        """Return the untruncated value distribution (scvi-tools' NB with mu, theta; else torch's).

        ``"categorical"`` gives a :class:`~torch.distributions.Categorical` over the
        vocabulary positions; ``"logcount"`` has no torch distribution (see :meth:`nll`).
        """
        if self.likelihood == "categorical":
            return Categorical(logits=params, validate_args=False)
        if self.likelihood == "logcount":
            raise NotImplementedError("The 'logcount' law is used through nll() and sample().")
        if self.likelihood == "ztnb":
            log_mu, log_theta = params.unbind(-1)
            return NegativeBinomial(
                mu=clamp_through(log_mu, -12, 12).exp(),
                theta=clamp_through(log_theta, -8, 12).exp(),
            )
        if self.likelihood == "ztpoisson":
            return Poisson(clamp_through(params[..., 0], -12, 12).exp(), validate_args=False)
        loc, log_scale = params.unbind(-1)
        family = LogNormal if self.likelihood == "lognormal" else Normal
        return family(loc, clamp_through(log_scale, -7, 5).exp(), validate_args=False)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the (non-zero) values ``x``; same shape as ``x``.

        Count likelihoods are zero-truncated: ``log p(x) - log(1 - p(0))``.
        Positions where ``x`` is not a valid non-zero value must be masked by the caller
        (fill them with :attr:`fill_value`): a ``"categorical"`` value outside the
        vocabulary, or a ``"logcount"`` value outside ``1 .. max_value``, raises.
        """
        if self.likelihood in ("categorical", "logcount"):
            self._check_support(x)
        if self.likelihood == "categorical":
            pos = torch.searchsorted(self.vocabulary, x.float().contiguous())
            log_p = torch.log_softmax(params, dim=-1)
            return -log_p.gather(-1, pos.unsqueeze(-1)).squeeze(-1)
        if self.likelihood == "logcount":
            return -self._logcount_log_prob(params, x).float()
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
        count distribution (at least 1), the median of the log-normal, the Gaussian mean,
        the most likely vocabulary value, the ``"logcount"`` law's median.

        ``"categorical"`` returns vocabulary values exactly. ``"logcount"`` draws
        ``u ~ Logistic(mu, s)`` truncated to ``u < T`` by inversion in float64 and returns
        ``max(1, round(exp(u)))``, the discretisation of :meth:`nll`, so every value is
        an integer in ``1 .. max_value``.
        """
        if self.likelihood == "categorical":
            if greedy:
                return self.vocabulary[params.argmax(-1)]
            u = torch.rand(params.shape, generator=generator, device=params.device)
            gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
            return self.vocabulary[(params.float() + gumbel).argmax(-1)]
        if self.likelihood == "logcount":
            return self._sample_logcount(params, generator, greedy).to(params.dtype)
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

    def _sample_logcount(self, params, generator, greedy: bool) -> torch.Tensor:
        """``"logcount"`` draws by inversion of the truncated logistic (float64 throughout)."""
        mu, s = self._logcount_params(params)
        mass = torch.sigmoid((math.log(self._top + 0.5) - mu) / s)
        if greedy:
            u = torch.full_like(mu, 0.5)
        else:
            u = torch.rand(mu.shape, generator=generator, device=mu.device, dtype=torch.float64)
        p = u * mass
        draw = mu + s * (torch.log(p) - torch.log1p(-p))
        # p < F(T), so exp(draw) < max_value + 0.5; the clamp only settles float64 rounding
        return torch.round(torch.exp(draw)).clamp(1.0, self._top)

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
