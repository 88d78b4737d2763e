"""benchmarks/like_strength.py runs end to end on a PBMC subset and reports every strength."""

from __future__ import annotations

import json

import torch

from .conftest import load_benchmark


def test_like_strength_smoke(tmp_path):
    threads = torch.get_num_threads()
    table = load_benchmark("like_strength").main(
        ["--smoke", "--strengths", "0.1", "1.0", "--summary-dir", str(tmp_path)]
    )
    assert torch.get_num_threads() == threads
    assert list(table.index) == ["real held-out", "reconstruct", "strength 0.1", "strength 1"]
    assert table["label_agreement"].between(0, 1).all()
    assert table.loc["real held-out", "to_template"] == 0
    assert table.loc["real held-out", "to_train"] == 1
    assert (table.drop(index="real held-out")["to_template"] > 0).all()
    payload = json.loads((tmp_path / "smoke_pbmc68k_like_strength.json").read_text())
    assert set(payload["rows"]) == set(table.index) and payload["d_nn"] > 0
