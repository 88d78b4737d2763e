from __future__ import annotations

import json

import pytest
import torch

from .conftest import load_benchmark


def test_ae_throughput_smoke(tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "ae.json"
    try:
        load_benchmark("ae_throughput").main(
            ["--smoke", "--device", "cpu", "--threads", "1", "--n-batches", "2", "--out", str(out)]
        )
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["step_s"] > 0 and row["real_tokens_per_s"] > 0
    # real tokens are the pairs plus one END per row; padding can only add positions
    assert row["padding"] >= 1.0
    assert row["padded_tokens_per_s"] >= row["real_tokens_per_s"]


def test_batches_are_full_and_shared(tmp_path):
    module = load_benchmark("ae_throughput")
    args = module.parse_args(["--smoke", "--n-batches", "3", "--warmup", "1", "--batch-size", "8"])
    adata, _ = module.load_counts(args)
    rows = module.batches(adata.layers["counts"], args)
    assert len(rows) == 4 and all(len(r) == 8 for r in rows)
    again = module.batches(adata.layers["counts"], args)
    assert all((a == b).all() for a, b in zip(rows, again, strict=True))


def test_missing_bladder_file_says_what_to_pass(tmp_path):
    module = load_benchmark("ae_throughput")
    args = module.parse_args(["--bladder", str(tmp_path / "absent.h5")])
    with pytest.raises(SystemExit, match="--pbmc or --smoke"):
        module.load_counts(args)
