from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import load_benchmark


def test_discriminator_smoke(tmp_path):
    result = load_benchmark("discriminator").main(["--smoke", "--stages", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "discriminator.json").read_text())
    assert set(data["pairs"]) == {
        "heldout",
        "train",
        "copies",
        "real_vs_real",
        "reconstructed",
        "like_0.5",
    }
    for pair in data["pairs"].values():
        assert set(pair) == {"gradient_boosting", "logistic"}
        overall = pair["gradient_boosting"]["all"]
        assert 0 <= overall["auroc"]["all_features"] <= 1
        assert {s["feature"] for s in overall["summaries"]} >= {"log_library_size"}
    assert (tmp_path / "model").is_dir()  # trained and saved for a later --model run
    assert (tmp_path / "train_features.png").is_file()
    assert set(data["auroc_by_n_pcs"]["train"]["logistic"]) == {"2", "5"}
    types = {row["bulk_labels"] for row in data["summary_stats_by_type"]}
    assert "CD19+ B" in types
    assert np.isfinite(data["summary_stats_by_type"][0]["log_library_size_mean_real"])
    assert result["settings"]["smoke"] is True


def test_discriminator_ae_epochs_cannot_reuse_a_saved_model(tmp_path):
    bench = load_benchmark("discriminator")
    assert bench.parse_args(["--ae-epochs", "96"]).ae_epochs == 96
    with pytest.raises(SystemExit, match="--ae-epochs trains a new model"):
        bench.main(["--model", str(tmp_path), "--ae-epochs", "96"])
