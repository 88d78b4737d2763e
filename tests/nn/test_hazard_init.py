from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sc_sed.data import matrix_stats
from sc_sed.nn import FactorisedIndexHead, FlatIndexHead


def _bernoulli_loglik(rows: list[list[int]], rate: torch.Tensor) -> float:
    x = torch.zeros(len(rows), len(rate))
    for i, r in enumerate(rows):
        x[i, r] = 1.0
    return float((x * rate.log() + (1 - x) * (1 - rate).log()).sum())


def _sequence_loglik(head, rows: list[list[int]], n_features: int, n_hidden: int) -> float:
    total = 0.0
    for r in rows:
        target = torch.tensor([*r, n_features])
        last = torch.tensor([-1, *r])
        h = torch.zeros(len(target), n_hidden)
        total += float(head.log_prob(h, target, last).sum())
    return total


def _zero_weights(head) -> None:
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name.endswith("weight"):
                p.zero_()
            if name == "offset_proj.1.bias":
                p.zero_()


@pytest.mark.parametrize("kind", ["flat", "factorised"])
def test_init_hazards_is_independent_bernoulli(kind):
    d, n_hidden = 11, 8
    rate = torch.linspace(0.05, 0.9, d)
    if kind == "flat":
        head = FlatIndexHead(n_hidden, d)
    else:
        head = FactorisedIndexHead(n_hidden, d, block_size=4, current_block_hazard=True)
    head.init_hazards(rate)
    _zero_weights(head)
    rows = [[0, 3, 4, 10], [], [2], list(range(d))]
    got = _sequence_loglik(head, rows, d, n_hidden)
    assert got == pytest.approx(_bernoulli_loglik(rows, rate), rel=1e-4)


def test_old_factorised_state_dict_loads_without_offset_bias():
    head = FactorisedIndexHead(8, 11, block_size=4)
    state = {k: v for k, v in head.state_dict().items() if k != "offset_bias"}
    fresh = FactorisedIndexHead(8, 11, block_size=4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.offset_bias, torch.zeros_like(fresh.offset_bias))


def test_matrix_stats_counts_detections():
    x = sp.csr_matrix(np.array([[0, 2, 0], [1, 3, 0], [0, 0, 0]]))
    assert matrix_stats(x).n_detected.tolist() == [1, 2, 0]


def test_sed_model_starts_at_the_data_detection_rates_by_default():
    import sc_sed

    adata = sc_sed.datasets.synthetic_counts(n_cells=60, n_genes=600, seed=0)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    x = sp.csr_matrix(adata.layers["counts"])
    rate = np.diff(sp.csc_matrix(x).indptr) / x.shape[0]
    model = sc_sed.SEDModel(adata, n_hidden=16, n_ff=32, n_layers=1, n_latent=4)  # defaults
    head = model.module.decoder.index_head
    assert head.current_block_hazard
    seen = rate > 0
    bias = head.offset_bias.detach().flatten()[:600].numpy()
    expected = np.log(np.clip(rate, 1e-4, 1 - 1e-4) / (1 - np.clip(rate, 1e-4, 1 - 1e-4)))
    np.testing.assert_allclose(bias[seen], expected[seen], rtol=1e-4, atol=1e-4)
    off = sc_sed.SEDModel(
        adata, n_hidden=16, n_ff=32, n_layers=1, n_latent=4, hazard_init=False,
        current_block_hazard=False,
    )  # fmt: skip
    assert float(off.module.decoder.index_head.offset_bias.abs().sum()) == 0.0
    assert not off.module.decoder.index_head.current_block_hazard


def test_current_block_hazard_matters_for_the_factorised_head():
    d, n_hidden = 11, 8
    rate = torch.linspace(0.05, 0.9, d)
    rows = [[0, 1, 2, 3], [5, 6]]
    heads = [FactorisedIndexHead(n_hidden, d, block_size=4, current_block_hazard=flag)
             for flag in (False, True)]  # fmt: skip
    for head in heads:
        head.init_hazards(rate)
        _zero_weights(head)
    old, new = (_sequence_loglik(h, rows, d, n_hidden) for h in heads)
    assert new == pytest.approx(_bernoulli_loglik(rows, rate), rel=1e-4)
    assert old != pytest.approx(new, rel=1e-3)
