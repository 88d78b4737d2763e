"""The auxiliary detection loss: its value, its gradient path and its switch."""

import pytest
import torch

from sc_sed.data import csr_to_tokens
from sc_sed.module import SEDModule
from sc_sed.module._sed import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY


def _module(weight: float, **kwargs) -> SEDModule:
    torch.manual_seed(0)
    return SEDModule(
        n_features=30, max_nonzero=10, n_latent=4, n_hidden=16, n_layers=1, n_heads=2,
        n_ff=16, index_head="factorised", block_size=6, denoiser_widths=(16, 8),
        detection_rate=torch.full((30,), 0.2), detection_weight=weight, **kwargs,
    )  # fmt: skip


def _tensors():
    import scipy.sparse as sp

    x = sp.random(5, 30, density=0.2, format="csr", random_state=0)
    x.data[:] = 1 + (x.data * 5).round()
    tok = csr_to_tokens(x, max_nonzero=10)
    return {TOKENS_INDEX_KEY: tok.index, TOKENS_VALUE_KEY: tok.value}


def test_detection_loss_adds_the_weighted_set_likelihood():
    tensors = _tensors()
    module = _module(0.5, detection_prior=True).eval()
    with torch.no_grad():
        torch.nn.init.normal_(module.decoder.index_head.context_feature.weight)
        _, _, with_loss = module(tensors)
        module.detection_weight = 0.0
        _, _, without = module(tensors)
        z = module.encode(tensors[TOKENS_INDEX_KEY], tensors[TOKENS_VALUE_KEY])
        nll = module.decoder.detection_nll(z, tensors[TOKENS_INDEX_KEY], module.allowed_features)
    n_targets = (tensors[TOKENS_INDEX_KEY][:, 1:] <= 30).sum()  # pairs and END
    expected = without.loss + 0.5 * nll.sum() / n_targets
    torch.testing.assert_close(with_loss.loss, expected, rtol=1e-5, atol=1e-6)
    assert "detection_nll_per_row" in with_loss.extra_metrics
    assert "detection_nll_per_row" not in without.extra_metrics


def test_detection_loss_trains_the_encoder():
    """The term alone reaches the encoder: the latent has to say which features are present."""
    tensors = _tensors()
    module = _module(1.0, detection_prior=True)
    torch.nn.init.normal_(module.decoder.index_head.context_feature.weight)
    inference = module.inference(tensors[TOKENS_INDEX_KEY], tensors[TOKENS_VALUE_KEY])
    nll = module.decoder.detection_nll(inference["z"], tensors[TOKENS_INDEX_KEY])
    nll.sum().backward()
    grads = [p.grad for p in module.encoder.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_negative_detection_weight_is_refused():
    with pytest.raises(ValueError, match="detection_weight"):
        _module(-1.0)
