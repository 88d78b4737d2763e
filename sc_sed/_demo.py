"""The main job: train a conditional SED on embedded PBMC counts and judge its cells."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SUMMARY_METRICS = (
    "zero_fraction_real",
    "zero_fraction_synth",
    "scc",
    "mmd",
    "discriminability_auroc",
    "label_accuracy",
    "n_spurious_features",
    "memorisation_ratio",
)


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo`.

    Sizes, epochs and the minibatch left at None are the model's recipe for the data and
    the device (:data:`sc_sed.model.PRESETS`: the small CPU model on a CPU), as for any
    ``SEDModel(adata); model.train()``. ``threads=None`` picks torch CPU threads that do
    not oversubscribe the machine (:func:`sc_sed._threads.recommended_threads`).
    """

    out: Path = Path("sc_sed_demo")
    max_epochs: int | None = None
    diffusion_max_epochs: int | None = None
    accelerator: str = "auto"
    seed: int = 0
    heldout_fraction: float = 0.2
    n_hidden: int | None = None
    n_layers: int | None = None
    n_latent: int | None = None
    batch_size: int | None = None
    n_steps: int = 50
    figures: bool = True
    threads: int | None = None


def stratified_split(
    labels: pd.Series, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (training, held-out), holding out ``fraction`` of each label."""
    rng = np.random.default_rng(seed)
    held = []
    for _, rows in pd.Series(np.arange(len(labels)), index=labels.values).groupby(
        level=0, observed=True
    ):
        rows = rng.permutation(rows.to_numpy())
        held.extend(rows[: max(1, int(round(fraction * len(rows))))])
    held = np.sort(np.asarray(held))
    return np.setdiff1d(np.arange(len(labels)), held), held


def _figures(heldout, synth, out: Path, seed: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import sc_sed

    written = []
    plots = {
        "dropout_pattern.png": lambda: sc_sed.pl.dropout_pattern(
            heldout, synth, layer="counts", kind="both", show=False
        ),
        "genes_detected.png": lambda: sc_sed.pl.genes_detected(
            heldout, synth, layer="counts", show=False
        ),
        "umap.png": lambda: sc_sed.pl.umap(
            sc_sed.tl.co_embed(heldout, synth, layer="counts", seed=seed),
            color="bulk_labels",
            side_by_side=True,
            show=False,
        ),
    }
    for name, draw in plots.items():
        draw()
        plt.gcf().savefig(out / name, dpi=120, bbox_inches="tight")
        plt.close("all")
        written.append(name)
    return written


def run_demo(cfg: DemoConfig) -> pd.DataFrame:
    """Train, generate as many cells as the held-out set (same label mix), evaluate, write files.

    Writes ``synthetic.h5ad``, ``metrics.csv``, ``summary.json`` (with the seconds each
    stage took, ``stage_seconds``), the trained model (``model/``) and figures into
    ``cfg.out``.

    Parameters
    ----------
    cfg
        Settings.

    Returns
    -------
    The metrics table of :func:`sc_sed.tl.evaluate`.
    """
    import scvi

    import sc_sed

    from ._threads import apply_threads

    stages = _StageClock()
    threads = apply_threads(cfg.threads)
    scvi.settings.seed = cfg.seed  # the model's initial weights too, not only training
    cfg.out.mkdir(parents=True, exist_ok=True)
    adata = sc_sed.datasets.pbmc68k_counts()
    train_idx, held_idx = stratified_split(adata.obs["bulk_labels"], cfg.heldout_fraction, cfg.seed)
    train, heldout = adata[train_idx].copy(), adata[held_idx].copy()
    sc_sed.SEDModel.setup_anndata(train, layer="counts", labels_key="bulk_labels")
    preset = "cpu" if cfg.accelerator == "cpu" else "auto"
    model = sc_sed.SEDModel(
        train, n_hidden=cfg.n_hidden, n_layers=cfg.n_layers, n_latent=cfg.n_latent, preset=preset
    )
    stages.lap("load")
    model.train(
        cfg.max_epochs,
        cfg.diffusion_max_epochs,
        accelerator=cfg.accelerator,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    train_s = stages.lap("train")
    labels = heldout.obs["bulk_labels"].value_counts()
    synth = model.generate(
        None,
        labels={k: int(v) for k, v in labels.items() if v > 0},
        n_steps=cfg.n_steps,
        seed=cfg.seed,
    )
    gen_s = stages.lap("generate")
    metrics = sc_sed.tl.evaluate(
        heldout, synth, layer="counts", groupby="bulk_labels", train=train, seed=cfg.seed
    )
    stages.lap("evaluate")
    synth.write_h5ad(cfg.out / "synthetic.h5ad")
    metrics.to_csv(cfg.out / "metrics.csv", index=False)
    model.save(cfg.out / "model", overwrite=True)
    stages.lap("save")
    figures = _figures(heldout, synth, cfg.out, cfg.seed) if cfg.figures else []
    stages.lap("figures")
    summary = {
        "n_train": int(train.n_obs),
        "n_heldout": int(heldout.n_obs),
        "n_generated": int(synth.n_obs),
        "train_seconds": round(train_s, 1),
        "generate_seconds": round(gen_s, 1),
        "device": str(model.device),
        "threads": threads,
        "stage_seconds": stages.seconds,
        "figures": figures,
        "recipe": model.recipe_,
        "metrics": overall_metrics(metrics),
    }
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return metrics


class _StageClock:
    """Seconds of consecutive stages: :meth:`lap` closes the stage running since the last."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> float:
        """Record the stage ``name`` as ended now; return its seconds."""
        now = time.perf_counter()
        self.seconds[name] = round(now - self._start, 1)
        self._start = now
        return self.seconds[name]


def overall_metrics(metrics: pd.DataFrame) -> dict[str, float]:
    """Return the headline metrics (group ``"all"``) as a dict."""
    overall = metrics[metrics["group"] == "all"].set_index("metric")["value"]
    return {k: float(overall[k]) for k in SUMMARY_METRICS if k in overall.index}
