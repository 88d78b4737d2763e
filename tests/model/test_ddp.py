import numpy as np
import pytest
import torch

import sc_sed
from sc_sed.train import LengthBucketBatchSampler

from .conftest import TINY, tiny_counts


@pytest.mark.slow
def test_ddp_training_on_two_cpu_processes():
    """Both stages train under Lightning DDP (two spawned CPU processes, gloo backend)."""
    adata = tiny_counts(n_cells=64)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, **TINY)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(
        max_epochs=1, diffusion_max_epochs=1, batch_size=16, accelerator="cpu", devices=2,
        strategy="ddp_spawn", enable_progress_bar=False,
    )  # fmt: skip
    after = model.module.state_dict()
    changed = [k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy())]
    assert any(k.startswith("encoder.") for k in changed)
    assert any(k.startswith("diffusion.denoiser.") for k in changed)
    synth = model.generate(4, n_steps=2, progress_bar=False)
    assert synth.n_obs == 4


def _rank_batches(lengths, k, *, epoch=0, **kw):
    out = []
    for rank in range(k):
        sampler = LengthBucketBatchSampler(
            lengths, 4, pool_batches=2, num_replicas=k, rank=rank, **kw
        )
        sampler.set_epoch(epoch)
        out.append(list(sampler))
        assert len(out[-1]) == len(sampler)
    return out


@pytest.mark.parametrize(("n_rows", "k"), [(48, 2), (48, 3), (50, 2), (37, 4)])
def test_bucket_sampler_splits_rows_across_ranks(n_rows, k):
    lengths = np.random.default_rng(0).integers(1, 100, n_rows)
    torch.manual_seed(0)
    per_rank = _rank_batches(lengths, k)
    torch.manual_seed(1)  # ranks agree through (seed, epoch), not torch's global generator
    assert _rank_batches(lengths, k) == per_rank
    assert len({len(b) for b in per_rank}) == 1, "every rank runs the same number of batches"
    rows = [r for batches in per_rank for batch in batches for r in batch]
    assert set(rows) == set(range(n_rows))
    n_batches = -(-n_rows // 4)
    if n_batches % k == 0:
        assert len(rows) == n_rows, "no row on two ranks"
    dropped = _rank_batches(lengths, k, drop_last=True)
    rows = [r for batches in dropped for batch in batches for r in batch]
    assert len(rows) == len(set(rows)) and all(len(b) == 4 for bs in dropped for b in bs)
    assert len({len(b) for b in dropped}) == 1
    assert _rank_batches(lengths, k, epoch=1) != per_rank


def test_bucket_sampler_rank_is_checked():
    with pytest.raises(ValueError, match="rank"):
        LengthBucketBatchSampler(np.ones(8), 4, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="rank"):
        LengthBucketBatchSampler(np.ones(8), 4, num_replicas=2)
