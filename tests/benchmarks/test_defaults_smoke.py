from __future__ import annotations

import json

import torch

from .conftest import load_benchmark


def test_defaults_smoke(tmp_path):
    threads = torch.get_num_threads()
    result = load_benchmark("defaults").main(["--smoke", "--out", str(tmp_path)])
    assert torch.get_num_threads() == threads  # the script restores what it pins
    data = json.loads((tmp_path / "defaults.json").read_text())
    assert list(data["methods"]) == ["SED defaults", "scVI defaults"]
    for row in data["methods"].values():
        assert row["train_seconds"] > 0 and row["generate_seconds"] >= 0
        assert 0 <= row["zero_fraction_synth"] <= 1 and -1 <= row["scc"] <= 1
    # the SED model records the recipe it chose (the CPU preset on --device cpu)
    assert data["settings"]["recipes"]["SED defaults"]["preset"] == "cpu"
    assert data["methods"]["SED defaults"]["n_spurious_features"] == 0
    assert result["methods"].keys() == data["methods"].keys()
