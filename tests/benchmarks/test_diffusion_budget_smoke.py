"""benchmarks/diffusion_budget.py runs end to end on tiny data and reports every arm."""

from __future__ import annotations

import json

import torch

from .conftest import load_benchmark


def test_arms_share_one_autoencoder_and_report_their_budgets(tmp_path):
    threads = torch.get_num_threads()
    table = load_benchmark("diffusion_budget").main(
        ["--smoke", "--device", "cpu", "--sed-diffusion-epochs", "3", "--arms", "fixed", "early",
         "--cap", "4", "--fixed-epochs", "2", "--summary-dir", str(tmp_path)]
    )  # fmt: skip
    assert torch.get_num_threads() == threads
    assert list(table.index) == ["fixed", "early", "fixed_2"]
    assert table.loc["fixed", "epochs"] == 3  # no early stopping: exactly the preset's epochs
    assert table.loc["fixed_2", "epochs"] == 2
    assert 1 <= table.loc["early", "epochs"] <= 4
    assert table["discriminability_auroc"].between(0, 1).all()
    payload = json.loads((tmp_path / "smoke_diffusion_budget.json").read_text())
    assert [a["arm"] for a in payload["arms"]] == ["fixed", "early", "fixed_2"]
    assert payload["budget"]["sed_diffusion_epochs"] == 3


def test_arm_arguments():
    module = load_benchmark("diffusion_budget")
    budget = module.Q.Budget(sed_diffusion_epochs=7)
    assert module.diffusion_kwargs("fixed", budget) == {"max_epochs": 7, "early_stopping": False}
    assert module.diffusion_kwargs("fixed_12", budget) == {
        "max_epochs": 12,
        "early_stopping": False,
    }
    assert module.diffusion_kwargs("early", budget) == {"early_stopping": True}
    assert module.diffusion_kwargs("early", budget, 9) == {"early_stopping": True, "max_epochs": 9}
    assert module.diffusion_kwargs("old_default", budget) == {
        "max_epochs": None, "early_stopping": False,
    }  # fmt: skip
    assert module.diffusion_kwargs("old_default", budget, 9)["max_epochs"] == 9
