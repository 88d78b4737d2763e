import pytest
import torch

import sc_sed
from sc_sed.train import adam_optimizer

from ..model.conftest import TINY, tiny_counts


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in [(5, 3), (3,), (7,)]]


def _run(opt: torch.optim.Optimizer, params, steps: int = 5) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_optimizer_fuses_on_cpu_with_the_same_update(cls):
    fused_params, plain_params = _params(0), _params(0)
    kw = {"lr": 1e-2, "weight_decay": 1e-2, "eps": 1e-8}
    fused = adam_optimizer(cls, fused_params, **kw)
    plain = adam_optimizer(cls, plain_params, fuse=False, **kw)
    assert type(fused) is cls and fused.defaults["fused"] is True
    assert not plain.defaults["fused"]
    _run(fused, fused_params)
    _run(plain, plain_params)
    for a, b, start in zip(fused_params, plain_params, _params(0), strict=True):
        assert not torch.equal(a, start)  # the step moved it
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_adam_optimizer_falls_back_where_no_fused_kernel():
    class NoFused(torch.optim.AdamW):
        def __init__(self, params, fused=None, **kw):
            if fused:
                raise RuntimeError("`fused=True` requires supported devices")
            super().__init__(params, **kw)

    opt = adam_optimizer(NoFused, iter(_params(0)), lr=1e-3)  # an iterator, as plans pass
    assert isinstance(opt, NoFused) and not opt.defaults["fused"]
    assert len(opt.param_groups[0]["params"]) == 3


@pytest.mark.parametrize(("precision", "fused"), [("32-true", True), ("bf16-mixed", False)])
def test_both_stages_fuse_their_optimizer_except_under_mixed_precision(precision, fused):
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, **TINY)
    model.train_autoencoder(max_epochs=1, precision=precision, enable_progress_bar=False)
    assert bool(model.trainer.optimizers[0].defaults["fused"]) is fused
    model.train_diffusion(max_epochs=1, precision=precision, enable_progress_bar=False)
    assert bool(model.trainer.optimizers[0].defaults["fused"]) is fused
    assert model.is_trained_
