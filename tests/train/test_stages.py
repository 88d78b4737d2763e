"""The two training stages as scvi-tools objects: runners, plans, flags, history, seeds."""

import numpy as np
import pytest
import scvi
import torch

import sc_sed
from sc_sed.module import LatentDiffusion
from sc_sed.train import (
    AutoencoderTrainingPlan,
    DiffusionTrainingPlan,
    StageTrainRunner,
    uses_distributed_sampler,
)

from ..model.conftest import FIT, TINY, tiny_counts


def _model():
    adata = tiny_counts(n_cells=40)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    return sc_sed.SEDModel(adata, **TINY)


def test_zero_epochs_leave_the_model_untrained():
    model = _model()
    model.train_autoencoder(max_epochs=0, **FIT)
    assert not model.is_trained_ and not model.autoencoder_trained_
    with pytest.raises(ValueError, match="max_epochs"):
        model.train(max_epochs=0, **FIT)
    assert not model.is_trained_ and not model.autoencoder_trained_
    with pytest.raises(ValueError, match="max_epochs"):
        model.train(max_epochs=-1, **FIT)


def test_seed_does_not_change_the_callers_seed_or_random_state():
    scvi.settings.seed = 7
    model = _model()  # draws initial weights; take the states after it
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()  # noqa: NPY002
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=16, seed=3, **FIT)
    assert scvi.settings.seed == 7
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002


def test_same_seed_same_training():
    first, second = _model(), _model()
    second.module.load_state_dict(first.module.state_dict())
    for model in (first, second):
        model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=16, seed=5, **FIT)
    for key, value in first.module.state_dict().items():
        assert torch.equal(value, second.module.state_dict()[key]), key


def test_history_continues_across_calls_and_keeps_both_stages():
    model = _model()
    model.train(max_epochs=2, diffusion_max_epochs=2, batch_size=16, **FIT)
    assert len(model.history["train_loss"]) == 2
    assert len(model.history["train_diffusion_loss"]) == 2
    split = model.train_indices_.copy()
    model.train_diffusion(max_epochs=1, early_stopping=False, **FIT)
    assert len(model.history["train_diffusion_loss"]) == 3
    assert len(model.history["train_loss"]) == 2
    assert np.array_equal(model.train_indices_, split)  # the diffusion stage keeps the split


def test_building_plans_does_not_touch_the_module():
    model = _model()
    flags = {n: p.requires_grad for n, p in model.module.named_parameters()}
    AutoencoderTrainingPlan(model.module)
    DiffusionTrainingPlan(model.module.diffusion)
    assert flags == {n: p.requires_grad for n, p in model.module.named_parameters()}


def test_autoencoder_plan_is_an_scvi_training_plan_that_trains_only_the_autoencoder():
    model = _model()
    plan = AutoencoderTrainingPlan(model.module)
    assert isinstance(plan, scvi.train.TrainingPlan)
    plan.setup("fit")
    trainable = {n.split(".")[0] for n, p in model.module.named_parameters() if p.requires_grad}
    assert trainable == {"encoder", "decoder"}


def test_stage_classes_can_be_swapped():
    calls = []

    class Runner(StageTrainRunner):
        def __call__(self):
            calls.append(type(self.training_plan).__name__)
            return super().__call__()

    class Model(sc_sed.SEDModel):
        _train_runner_cls = Runner
        _diffusion_train_runner_cls = Runner

    adata = tiny_counts(n_cells=40)
    Model.setup_anndata(adata, layer="counts")
    model = Model(adata, **TINY)
    model.train(max_epochs=1, diffusion_max_epochs=1, batch_size=16, **FIT)
    assert calls == ["AutoencoderTrainingPlan", "DiffusionTrainingPlan"]


def test_a_second_autoencoder_run_trains_in_training_mode():
    modes = []

    class Plan(AutoencoderTrainingPlan):
        def training_step(self, batch, batch_idx):
            modes.append(self.module.decoder.training)
            return super().training_step(batch, batch_idx)

    class Model(sc_sed.SEDModel):
        _training_plan_cls = Plan

    adata = tiny_counts(n_cells=40)
    Model.setup_anndata(adata, layer="counts")
    model = Model(adata, **TINY)
    for _ in range(2):
        model.train_autoencoder(max_epochs=1, batch_size=16, **FIT)
    assert len(modes) == 6 and all(modes)
    assert not model.module.training  # eval mode again after training


def test_diffusion_stops_early_when_asked():
    model = _model()
    model.train_autoencoder(max_epochs=1, batch_size=16, **FIT)
    model.train_diffusion(
        max_epochs=500, early_stopping=True, early_stopping_patience=2,
        early_stopping_min_delta=1e9, **FIT,
    )  # fmt: skip
    assert "validation_diffusion_loss" in model.history
    assert len(model.history["train_diffusion_loss"]) < 10  # patience 2, impossible min_delta


def test_diffusion_runs_its_whole_budget_by_default():
    """No early stopping unless asked (the held-out loss plateaus while samples improve)."""
    model = _model()
    model.train_autoencoder(max_epochs=1, batch_size=16, **FIT)
    model.train_diffusion(max_epochs=6, early_stopping_patience=1, **FIT)
    assert len(model.history["train_diffusion_loss"]) == 6
    assert "validation_diffusion_loss" not in model.history  # no held-out latents either


def test_validation_diffusion_loss_is_repeatable():
    module = LatentDiffusion(4, [3], widths=(16, 8), n_embed=8)
    z, cond = torch.randn(32, 4), torch.randint(0, 3, (32, 1))
    losses = [
        module.loss(z, cond, generator=torch.Generator().manual_seed(0)).item() for _ in range(2)
    ]
    assert losses[0] == losses[1]


def test_ema_is_an_averaged_model_and_loads_legacy_keys():
    module = LatentDiffusion(4, [], widths=(16, 8), n_embed=8)
    assert isinstance(module.ema, torch.optim.swa_utils.AveragedModel)
    with torch.no_grad():
        for p in module.denoiser.parameters():
            p.add_(1.0)
    module.update_ema(0.5)  # the first update copies the weights
    for ema, p in zip(module.ema_denoiser.parameters(), module.denoiser.parameters(), strict=True):
        assert torch.equal(ema, p)
    legacy = {
        k.replace("ema.module.", "ema_denoiser."): v
        for k, v in module.state_dict().items()
        if k != "ema.n_averaged"
    }
    fresh = LatentDiffusion(4, [], widths=(16, 8), n_embed=8)
    fresh.load_state_dict(legacy)
    for a, b in zip(fresh.ema_denoiser.parameters(), module.ema_denoiser.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("strategy", "expected"), [("ddp_spawn", True), ("auto", False)])
def test_uses_distributed_sampler(strategy, expected):
    assert uses_distributed_sampler(strategy) is expected


def test_validation_scores_each_held_out_latent_with_several_draws(monkeypatch):
    module = LatentDiffusion(4, [3], widths=(16, 8), n_embed=8)
    plan = DiffusionTrainingPlan(module, min_validation_draws=12)
    plan.n_obs_validation = 4
    seen = []
    monkeypatch.setattr(
        module, "loss", lambda z, cond, generator, ema: seen.append((len(z), ema)) or z.sum()
    )
    monkeypatch.setattr(plan, "log", lambda *a, **k: None)
    plan.validation_step((torch.randn(4, 4), torch.zeros(4, 1, dtype=torch.long)), 0)
    assert seen == [(12, True)]  # the EMA network, which samples, is scored
