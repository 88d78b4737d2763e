import json
import os

import numpy as np
import pytest
import scvi
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch import Callback

import sc_sed
from sc_sed.train import LengthBucketBatchSampler, SparseDataSplitter

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


class _Record(Callback):
    """Writes, per stage, rank and epoch, what the loaders yield and the logged metrics."""

    def __init__(self, folder):
        self.folder = str(folder)

    def _write(self, trainer, name, record):
        stage = "ae" if hasattr(trainer.datamodule, "adata_manager") else "diffusion"
        path = os.path.join(self.folder, f"{stage}_{name}_rank{trainer.global_rank}.json")
        with open(path, "w") as f:
            json.dump(record, f)

    def on_train_epoch_start(self, trainer, pl_module):
        sampler = trainer.train_dataloader.sampler
        self.n_batches = 0
        record = {
            "sampler": type(sampler).__name__,
            "num_replicas": getattr(sampler, "num_replicas", None),
            "rank": getattr(sampler, "rank", None),
            "epoch": getattr(sampler, "epoch", None),
            "batches": [list(map(int, b)) for b in sampler] if hasattr(sampler, "lengths") else [],
            "train_idx": np.asarray(getattr(trainer.datamodule, "train_idx", [])).tolist(),
        }
        self._write(trainer, f"epoch{trainer.current_epoch}", record)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.n_batches += 1

    def on_validation_epoch_start(self, trainer, pl_module):
        loader = trainer.val_dataloaders
        record = {
            "batches": [list(map(int, b)) for b in loader.sampler],
            "val_idx": np.asarray(getattr(trainer.datamodule, "val_idx", [])).tolist(),
        }
        self._write(trainer, f"val{trainer.current_epoch}", record)

    def on_train_end(self, trainer, pl_module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self._write(trainer, "end", {"metrics": metrics, "n_batches": self.n_batches})


def _read(folder, name):
    return [json.loads((folder / f"{name}_rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_ddp_bucketing_splits_training_rows_and_reduces_metrics(tmp_path):
    """Under DDP each rank trains on its own length-bucketed share of the training rows."""
    adata = tiny_counts(n_cells=64)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, **TINY)
    model.train(
        max_epochs=2, diffusion_max_epochs=1, batch_size=16, accelerator="cpu", devices=2,
        strategy="ddp_spawn", enable_progress_bar=False, callbacks=[_Record(tmp_path)],
        datasplitter_kwargs={"bucket_by_length": True, "bucket_pool_batches": 64},
        check_val_every_n_epoch=1,
    )  # fmt: skip
    lengths = np.diff(adata.layers["counts"].tocsr().indptr)
    epochs = [_read(tmp_path, f"ae_epoch{e}") for e in range(2)]
    for e, ranks in enumerate(epochs):
        assert [r["sampler"] for r in ranks] == ["LengthBucketBatchSampler"] * 2, "not wrapped"
        assert [(r["num_replicas"], r["rank"], r["epoch"]) for r in ranks] == [(2, 0, e), (2, 1, e)]
        assert ranks[0]["train_idx"] == ranks[1]["train_idx"]
        train_idx = np.asarray(ranks[0]["train_idx"])
        np.testing.assert_array_equal(model.train_indices, train_idx)  # the launcher's split
        batches = [b for r in ranks for b in r["batches"]]
        rows = [i for b in batches for i in b]
        assert sorted(rows) == list(range(len(train_idx))), "disjoint, and all training rows"
        # one pool holds the whole epoch: batches cover non-overlapping length ranges
        spans = sorted((lengths[train_idx[b]].min(), lengths[train_idx[b]].max()) for b in batches)
        assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:], strict=False))
    assert [r["batches"] for r in epochs[0]] != [r["batches"] for r in epochs[1]]
    val = _read(tmp_path, "ae_val0")
    val_rows = [i for r in val for b in r["batches"] for i in b]
    assert sorted(val_rows) == list(range(len(val[0]["val_idx"]))), "disjoint validation shards"
    np.testing.assert_array_equal(model.validation_indices, val[0]["val_idx"])
    assert val[0]["val_idx"] == val[1]["val_idx"]
    for stage, keys in (
        ("ae", ["train_loss", "validation_loss"]),
        ("diffusion", ["train_diffusion_loss"]),
    ):
        end = _read(tmp_path, f"{stage}_end")
        assert end[0]["n_batches"] == end[1]["n_batches"] > 0
        for key in keys:  # each rank saw other rows: equal values mean they were reduced
            assert end[0]["metrics"][key] == pytest.approx(end[1]["metrics"][key], rel=1e-6)


def test_splitter_splits_once_with_a_seed_every_rank_shares(monkeypatch):
    """Ranks that each build a splitter (torchrun, strategy="ddp") get the same split."""
    adata = tiny_counts(n_cells=64)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    manager = sc_sed.SEDModel(adata, **TINY).adata_manager
    monkeypatch.setattr(scvi.settings, "seed", None)
    splits = [SparseDataSplitter(manager, distributed_sampler=True) for _ in range(2)]
    np.testing.assert_array_equal(splits[0].train_idx, splits[1].train_idx)
    np.testing.assert_array_equal(splits[0].val_idx, splits[1].val_idx)
    assert len(np.intersect1d(splits[0].train_idx, splits[0].val_idx)) == 0
    train_idx = splits[0].train_idx.copy()
    splits[0].setup("fit")  # Lightning's call (in each spawned rank) keeps the split
    np.testing.assert_array_equal(splits[0].train_idx, train_idx)


def _save_on_rank(rank: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=2)
    try:
        adata = tiny_counts(n_cells=16)
        sc_sed.SEDModel.setup_anndata(adata, layer="counts")
        sc_sed.SEDModel(adata, **TINY).save(os.path.join(folder, f"rank{rank}"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_only_rank_zero_writes_a_saved_model(tmp_path):
    """Every DDP rank runs the user's script; only global rank 0 writes the model folder."""
    mp.spawn(_save_on_rank, args=(str(tmp_path),), nprocs=2, join=True)
    assert (tmp_path / "rank0").is_dir()
    assert not (tmp_path / "rank1").exists()
    assert not [p for p in tmp_path.iterdir() if "saving" in p.name], "no temporary folders left"
