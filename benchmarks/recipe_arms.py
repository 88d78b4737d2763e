"""Recipe arms on small data: autoencoder steps, denoiser widths and diffusion steps, paired by seed.

For each seed the data are split as in ``defaults.py`` (20% of each label held out). For each
autoencoder budget (``--ae-steps``) one ``SEDModel`` is built with its defaults and its
autoencoder trained for that many optimiser steps; then, from that same autoencoder, each
diffusion arm (``--arms WIDTHS:STEPS``, e.g. ``512-512-256-128:3200``) gets a fresh latent
diffusion with those denoiser widths, trained for that many optimiser steps. Every arm
generates the held-out label mix with the same seed and is scored by
:func:`sc_sed.tl.evaluate` against the held-out cells.

The table gives, per arm, the mean over seeds with a 95% t-interval of the training seconds
(autoencoder + diffusion) and the scores, and the paired difference of each score against
the first arm (the reference). Times are wall-clock seconds on this machine in this run;
compare arms of one run only.

Run ``python benchmarks/recipe_arms.py --help``; ``--smoke`` is a seconds-long check.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scvi
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import defaults  # noqa: E402
from _common import environment, quiet, resolve_device, t_interval, write_json  # noqa: E402
from quality import BLADDER_FILE  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed._demo import stratified_split  # noqa: E402
from sc_sed.module import LatentDiffusion  # noqa: E402

LAYER = "counts"
SCORES = (
    "discriminability_auroc",
    "mmd",
    "scc",
    "label_accuracy",
    "nnz_per_row_wasserstein",
    "detection_rate_pearson",
)
#: The recipe before this comparison (denoiser of the module defaults, 3,200 diffusion steps).
DEFAULT_ARMS = ("512-512-256-128:3200", "256-256-128-64:3200", "256-256-128-64:1600")
#: Tiny sizes and budgets for ``--smoke`` (a check that the script runs, not a measurement).
SMOKE_SED = {"n_hidden": 16, "n_latent": 4}
SMOKE_ARMS = ("16-8:8", "8-4:4")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_recipe_arms", help="Output folder.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Split/training seeds.")
    p.add_argument(
        "--ae-steps", type=int, nargs="+", default=[1000], help="Autoencoder optimiser steps."
    )
    p.add_argument(
        "--arms",
        nargs="+",
        default=list(DEFAULT_ARMS),
        help="Diffusion arms WIDTHS:STEPS (widths joined by '-'); the first is the reference.",
    )
    p.add_argument("--n-steps", type=int, default=50, help="DDIM sampling steps.")
    p.add_argument(
        "--bladder",
        type=Path,
        nargs="?",
        const=BLADDER_FILE,
        help=f"mouse bladder HDF5 (X counts, Y labels) instead of PBMC; default {BLADDER_FILE}",
    )
    p.add_argument(
        "--max-rows", type=int, help="Subsample the data set to this many rows first (by seed 0)."
    )
    p.add_argument("--tag", default="", help="Suffix of the summary name.")
    p.add_argument("--smoke", action="store_true", help="Tiny model and budgets.")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.ae_steps, args.arms, args.n_steps = [0, 1], [4], list(SMOKE_ARMS), 2
        args.max_rows = args.max_rows or 160
    args.arm_specs = [parse_arm(a) for a in args.arms]
    return args


def parse_arm(text: str) -> tuple[tuple[int, ...], int]:
    """``"512-256:3200"`` -> ``((512, 256), 3200)``; a clear error otherwise."""
    try:
        widths, steps = text.split(":")
        parsed = tuple(int(w) for w in widths.split("-")), int(steps)
    except ValueError:
        msg = f"arm {text!r} is not WIDTHS:STEPS, e.g. 512-512-256-128:3200."
        raise SystemExit(msg) from None
    if len(parsed[0]) < 2 or min(parsed[0]) < 1 or parsed[1] < 1:
        msg = f"arm {text!r}: give at least two positive widths and a positive step count."
        raise SystemExit(msg)
    return parsed


def load(args: argparse.Namespace) -> tuple[Any, str, str]:
    """``defaults.py``'s data set, name and label column, subsampled with ``--max-rows``."""
    adata, name, key = defaults.load(args)
    if args.max_rows is not None and args.max_rows < adata.n_obs:
        rows = np.sort(np.random.default_rng(0).choice(adata.n_obs, args.max_rows, replace=False))
        adata, name = adata[rows].copy(), f"{name}{args.max_rows}"
    return adata, name, key


def _epochs_for(steps: int, n_batches: int) -> int:
    return max(1, math.ceil(steps / max(1, n_batches)))


def _diffusion_batches(model: sc_sed.SEDModel, batch_size: int = 256) -> int:
    """Minibatches per diffusion epoch, as ``LatentDataModule`` makes them."""
    n = len(model.train_indices_)
    repeats = max(1, math.ceil(32 * batch_size / n))
    return max(1, (n * repeats) // batch_size)


def train_autoencoder(train, key: str, steps: int, seed: int, smoke: bool):
    """A defaults model with its autoencoder trained for about ``steps`` optimiser steps."""
    sc_sed.SEDModel.setup_anndata(train, layer=LAYER, labels_key=key)
    model = sc_sed.SEDModel(train, preset="cpu", **(SMOKE_SED if smoke else {}))
    n_train = round(0.9 * train.n_obs)
    epochs = _epochs_for(steps, math.ceil(n_train / sc_sed.model.PRESETS["cpu"].batch_size))
    scvi.settings.seed = seed  # the split and minibatch order of this seed
    start = time.perf_counter()
    model.train_autoencoder(epochs, accelerator="cpu", enable_progress_bar=False)
    return model, time.perf_counter() - start, epochs


def run_arm(model, widths, steps: int, mix: dict, seed: int, n_steps: int):
    """Fresh diffusion of ``widths`` on ``model``'s autoencoder; train, generate."""
    arm = copy.deepcopy(model)
    old = arm.module.diffusion
    arm.module.diffusion = LatentDiffusion(old.n_latent, old.n_cats_per_cond, widths=widths)
    torch.manual_seed(seed)
    epochs = _epochs_for(steps, _diffusion_batches(arm))
    start = time.perf_counter()
    arm.train_diffusion(epochs, accelerator="cpu", seed=seed, enable_progress_bar=False)
    seconds = time.perf_counter() - start
    synth = arm.generate(None, labels=mix, n_steps=n_steps, seed=seed, enable_progress_bar=False)
    return synth, seconds, epochs


def _interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval (NaN half-width below two values)."""
    ci = t_interval(list(values))
    half = ci["ci_high"] - ci["mean"] if ci["ci_high"] is not None else float("nan")
    return ci["mean"], half


def summarise(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per arm: mean ± 95% CI of every column, and paired differences against ``reference``."""
    rows = []
    cols = ["train_seconds", *SCORES]
    for arm, part in runs.groupby("arm", sort=False):
        row: dict[str, Any] = {"arm": arm, "n_seeds": len(part)}
        ref = runs[runs["arm"] == reference].set_index("seed")
        for col in cols:
            row[col], row[f"{col}_ci95"] = _interval(part[col].to_numpy())
            if arm != reference:
                diff = part.set_index("seed")[col] - ref[col].reindex(part["seed"])
                row[f"{col}_diff"], row[f"{col}_diff_ci95"] = _interval(diff.dropna().to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every (seed, autoencoder budget, diffusion arm); print and write the summary."""
    args = parse_args(argv)
    quiet()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    records = []
    try:
        adata, name, key = load(args)
        for seed in args.seeds:
            train_idx, held_idx = stratified_split(adata.obs[key], 0.2, seed)
            heldout = adata[held_idx].copy()
            counts = heldout.obs[key].value_counts()
            mix = {k: int(v) for k, v in counts.items() if v > 0}
            for ae_steps in args.ae_steps:
                train = adata[train_idx].copy()
                model, ae_s, ae_epochs = train_autoencoder(train, key, ae_steps, seed, args.smoke)
                for text, (widths, steps) in zip(args.arms, args.arm_specs, strict=True):
                    print(f"seed {seed}, ae {ae_steps}, arm {text} ...", flush=True)
                    synth, diff_s, epochs = run_arm(model, widths, steps, mix, seed, args.n_steps)
                    metrics = sc_sed.tl.evaluate(
                        heldout, synth, layer=LAYER, groupby=key, train=train, seed=seed,
                        markers=False,
                    )  # fmt: skip
                    overall = metrics[metrics["group"] == "all"].set_index("metric")["value"]
                    records.append({
                        "seed": seed, "arm": f"ae{ae_steps}/{text}", "ae_steps": ae_steps,
                        "ae_epochs": ae_epochs, "diffusion_epochs": epochs,
                        "ae_seconds": ae_s, "diffusion_seconds": diff_s,
                        "train_seconds": ae_s + diff_s,
                        **{k: float(overall[k]) for k in SCORES if k in overall.index},
                    })  # fmt: skip
                    print({k: round(v, 4) for k, v in records[-1].items() if k != "arm"})
    finally:
        torch.set_num_threads(threads)
    runs = pd.DataFrame(records)
    table = summarise(runs, runs["arm"].iloc[0])
    show = ["arm", "n_seeds", "train_seconds", *SCORES]
    print(table[show].to_string(float_format=lambda v: f"{v:.3f}", index=False))
    result = {
        "dataset": {"name": name, "n_obs": adata.n_obs, "n_vars": adata.n_vars},
        "settings": {"threads": args.threads, "seeds": args.seeds, "ae_steps": args.ae_steps,
                     "arms": args.arms, "n_steps": args.n_steps, "smoke": args.smoke},
        "runs": runs.to_dict(orient="records"),
        "summary": table.to_dict(orient="records"),
        "environment": environment(resolve_device("cpu")),
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"recipe_arms_{name}{args.tag}.json", result)
    return result


if __name__ == "__main__":
    main()
