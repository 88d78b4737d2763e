from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generation.py"


def _load():
    spec = importlib.util.spec_from_file_location("generation_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generation_smoke(tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "generation.json"
    try:
        _load().main(["--smoke", "--device", "cpu", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["sed", "dense", "scvi"]
    for row in data["rows"]:
        assert row["cells_per_s"] > 0 and row["n_cells"] == 16
        assert row["deterministic"] == "yes"
    sed = data["rows"][0]
    # the calibrated hazard gives rows of about the data's length (Binomial spread)
    assert 0.5 * sed["data_nnz_per_cell"] < sed["nnz_per_cell"] < 1.5 * sed["data_nnz_per_cell"]
    assert data["environment"]["torch_threads"] == 1


def test_missing_bladder_file_is_skipped(tmp_path, capsys):
    module = _load()
    args = module.parse_args(["--bladder", str(tmp_path / "absent.h5")])
    assert module.load_scale("bladder", args) is None
    assert "bladder scale skipped" in capsys.readouterr().out
