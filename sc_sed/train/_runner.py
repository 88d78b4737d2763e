"""TrainRunner for one training stage of a multi-stage model."""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
from lightning.pytorch.strategies import DDPStrategy, Strategy
from scvi.train import TrainRunner


def uses_distributed_sampler(strategy: str | Strategy | None) -> bool:
    """Return whether a Lightning ``strategy`` needs a distributed sampler (any DDP flavour)."""
    if isinstance(strategy, str):
        return "ddp" in strategy
    return isinstance(strategy, DDPStrategy)


def _logged_history(trainer) -> dict[str, pd.DataFrame]:
    """Per-epoch metrics the trainer's scvi-tools logger recorded (in memory or, after DDP, on disk)."""
    logger = trainer.logger
    history = getattr(logger, "history", None)
    if history:
        return {k: v.copy() for k, v in history.items()}
    path = getattr(logger, "history_path", None)
    if path and os.path.exists(path):
        with open(path, "rb") as f:  # written by scvi-tools' own logger on rank 0
            return pickle.load(f)
    return {}


def _ignore_sparse_beta_warning() -> None:
    # scvi-tools loads sparse minibatches as torch CSR tensors, which torch flags as beta
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def quiet_sparse_loading(batches: Iterable) -> Iterator:
    """Iterate over ``batches`` without torch's "sparse CSR is beta" warning."""
    iterator = iter(batches)
    while True:
        with warnings.catch_warnings():
            _ignore_sparse_beta_warning()
            try:
                batch = next(iterator)
            except StopIteration:
                return
        yield batch


class StageTrainRunner(TrainRunner):
    """:class:`scvi.train.TrainRunner` for one stage of a model trained in stages.

    It differs from scvi-tools' runner in three ways, so that no model state needs to be
    patched around a call:

    * **history**: every metric this stage logged is added to ``model.history_``;
      metrics that an earlier run logged already are continued (scvi-tools' runner keeps
      only the keys of the first run, so a second stage's keys would be dropped);
    * **split**: the model's ``train_indices``/``validation_indices``/``test_indices``
      are recorded only when ``records_split`` is True (the data module splits the
      model's rows); a stage that trains on derived data leaves them alone;
    * **trained flag**: ``model.is_trained_`` is set only when an optimiser step ran
      (``max_epochs=0`` trains nothing); :attr:`stepped` tells the caller.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`scvi.train.TrainRunner`.
    """

    records_split: bool = True

    @property
    def stepped(self) -> bool:
        """Whether the last run made at least one optimiser step.

        Processes spawned for DDP train on copies and hand back the weights and the logged
        metrics, not the step counter: a logged training metric counts as a step there.
        """
        logged = self.trainer.callback_metrics
        return self.trainer.global_step > 0 or any(k.startswith("train") for k in logged)

    def __call__(self) -> None:
        """Fit the plan, then record history, split and trained flag as described above.

        Only :meth:`scvi.train.TrainRunner.__init__` (building the Trainer) is inherited,
        which has been stable across scvi-tools 1.x; the run itself is this class's
        (scvi-tools' MLflow tracking is not used).
        """
        if hasattr(self.data_splitter, "n_train"):
            self.training_plan.n_obs_training = self.data_splitter.n_train
        if hasattr(self.data_splitter, "n_val"):
            self.training_plan.n_obs_validation = self.data_splitter.n_val
        try:
            with warnings.catch_warnings():
                _ignore_sparse_beta_warning()
                self.trainer.fit(self.training_plan, self.data_splitter, ckpt_path=self.ckpt_path)
        finally:
            self._update_history()
        if self.records_split:
            self.model.train_indices = getattr(self.data_splitter, "train_idx", None)
            self.model.validation_indices = getattr(self.data_splitter, "val_idx", None)
            self.model.test_indices = getattr(self.data_splitter, "test_idx", None)
        self.model.module.eval()
        self.model.is_trained_ = bool(self.model.is_trained_) or self.stepped
        self.model.to_device(self.device)
        self.model.trainer = self.trainer

    def _update_history(self) -> None:
        history = self.model.history_ if isinstance(self.model.history_, dict) else {}
        if self.trainer.is_global_zero:
            for key, new in _logged_history(self.trainer).items():
                old = history.get(key)
                if old is not None and len(old):
                    new.index = np.arange(len(old), len(old) + len(new))
                    new.index.name = old.index.name
                    new = pd.concat([old, new])
                history[key] = new
        self.model.history_ = history


class LatentStageTrainRunner(StageTrainRunner):
    """:class:`StageTrainRunner` for a stage trained on derived data (latents), not on rows."""

    records_split = False
