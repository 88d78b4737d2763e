from __future__ import annotations

import json

import pytest
import torch

from .conftest import load_benchmark


def test_generation_smoke(tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "generation.json"
    try:
        load_benchmark("generation").main(
            ["--smoke", "--device", "cpu", "--threads", "1", "--out", str(out)]
        )
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
    module = load_benchmark("generation")
    args = module.parse_args(["--bladder", str(tmp_path / "absent.h5")])
    assert module.load_scale("bladder", args) is None
    assert "bladder scale skipped" in capsys.readouterr().out


def test_calibrated_factorised_head_draws_rows_of_the_target_length():
    """Rows are independent Bernoulli(p) detections: mean length = target (the bug gave 0.66x)."""
    import sc_sed

    adata = sc_sed.datasets.synthetic_counts(n_cells=40, n_genes=600, seed=0)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(adata, n_hidden=16, n_ff=32, n_layers=1, n_heads=2, n_latent=4)
    assert model.index_head_ == "factorised"
    with torch.no_grad():  # as after training: every weight and bias of the head non-zero
        for param in model.module.decoder.index_head.parameters():
            param.normal_(0, 0.5)
    target = 60.0
    p = load_benchmark("generation").calibrate_lengths(model, target)
    z = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    _, _, n_nonzero = model.module.decoder.generate(
        z, 600, allowed=model.module.allowed_features, generator=torch.Generator().manual_seed(1)
    )
    n_allowed = int(model.module.allowed_features.sum())
    assert p * n_allowed == pytest.approx(target)
    sd_of_mean = (target * (1 - p) / len(z)) ** 0.5
    assert abs(float(n_nonzero.float().mean()) - target) < 4 * sd_of_mean
