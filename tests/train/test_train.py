import numpy as np
import pytest
import torch

import sc_sed
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY
from sc_sed.train import LatentDataModule, SparseDataSplitter, lr_factor

from ..model.conftest import TINY, tiny_counts


def test_splitter_keeps_batches_sparse_and_tokenises():
    adata = tiny_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, **TINY)
    splitter = SparseDataSplitter(
        model.adata_manager, max_nonzero=model.max_nonzero_, batch_size=16
    )
    splitter.setup()
    batch = next(iter(splitter.train_dataloader()))
    assert batch["X"].layout == torch.sparse_csr  # never densified by the loader
    out = splitter.on_after_batch_transfer(batch, 0)
    assert "X" not in out
    index, value = out[TOKENS_INDEX_KEY], out[TOKENS_VALUE_KEY]
    assert (
        index.shape[0] == batch["X"].shape[0] <= 16
        and index.shape[1] == int(np.diff(batch["X"].crow_indices().numpy()).max()) + 2
    )
    x = batch["X"]
    assert int((index < adata.n_vars).sum()) == x.values().numel()
    assert value.sum().item() == pytest.approx(float(x.values().sum()))


@pytest.mark.parametrize("schedule", ["cosine", "inverse_sqrt", "constant"])
def test_lr_factor_warms_up_then_decays(schedule):
    f = lr_factor(schedule, warmup_steps=10, total_steps=100)
    values = [f(s) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values[:9], values[1:10], strict=True))
    if schedule == "constant":
        assert values[-1] == 1.0
    else:
        assert 0.0 < values[-1] < 0.5


def test_latent_data_module_repeats_small_sets():
    z = torch.randn(10, 3)
    cond = torch.zeros(10, 0, dtype=torch.long)
    dm = LatentDataModule(
        z, cond, np.arange(100, 110), validation_size=0.2, batch_size=4, min_batches_per_epoch=5
    )
    assert dm.n_train == 8 and dm.n_val == 2
    assert set(dm.train_idx) | set(dm.val_idx) == set(range(100, 110))
    assert dm.repeats == 3  # ceil(5 batches * 4 rows / 8 rows)
    n_rows = sum(b[0].shape[0] for b in dm.train_dataloader())
    assert n_rows == 24  # 3 repeats of 8 rows, drop_last keeps full batches
    assert len(dm.val_dataloader()) == 1
