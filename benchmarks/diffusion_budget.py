"""Diffusion budget: early stopping against a fixed number of epochs, from one autoencoder.

SED's autoencoder is trained once (the ``quality.py`` preset of the dataset), saved, and
its latent diffusion is then trained from that same autoencoder in each arm:

- ``fixed``: the preset's ``--sed-diffusion-epochs`` without early stopping (what
  ``quality.py`` does; on PBMC its 190 epochs are about the old default of 6,000 steps);
- ``early``: ``train_diffusion(early_stopping=True)``: the model's epoch budget as a cap
  and early stopping on 10% held-out latents (patience 10 epochs);
- ``old_default``: the model's epoch budget without early stopping (the default).

Each arm generates the held-out label mix with the same seed and is scored against the
held-out cells with :func:`sc_sed.tl.evaluate` (same split as ``quality.py``). The table
gives the epochs and optimiser steps each arm ran, its diffusion training seconds and the
scores, so one can see whether stopping early costs quality.

Run ``python benchmarks/diffusion_budget.py --help``; ``--smoke`` runs in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as Q  # noqa: E402
from _common import environment, resolve_device, write_json  # noqa: E402

import sc_sed  # noqa: E402

ARMS = ("fixed", "early", "old_default")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options: quality.py's data and budget flags plus the arms."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    Q._add_data_args(p)
    Q._add_budget_args(p)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=["fixed", "early"])
    p.add_argument(
        "--fixed-epochs",
        nargs="+",
        type=int,
        default=[],
        help="more arms fixed_N: N diffusion epochs without early stopping (same autoencoder)",
    )
    p.add_argument("--tag", help="summary name <dataset>_diffusion_budget_<tag>.json")
    p.add_argument(
        "--cap",
        type=int,
        help="epoch cap of the early and old_default arms (default: the model's, ~6,000 steps)",
    )
    p.add_argument("--gen-batch-size", type=int, default=256)
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (default 1 on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--summary-dir",
        type=Path,
        default=Path(__file__).resolve().parent / "summaries",
        help="where <dataset>_diffusion_budget.json goes",
    )
    return p.parse_args(argv)


def diffusion_kwargs(arm: str, budget: Q.Budget, cap: int | None = None) -> dict[str, Any]:
    """``train_diffusion`` arguments of one arm (``cap``: epochs of the non-fixed arms)."""
    if arm == "fixed":
        return {"max_epochs": budget.sed_diffusion_epochs, "early_stopping": False}
    if arm.startswith("fixed_"):
        return {"max_epochs": int(arm.removeprefix("fixed_")), "early_stopping": False}
    if arm == "early":
        return {"early_stopping": True} | ({} if cap is None else {"max_epochs": cap})
    return {"max_epochs": cap, "early_stopping": False}


def _epochs_run(model: sc_sed.SEDModel) -> int:
    """Diffusion epochs in the model's history (one logged value per epoch)."""
    keys = [k for k in model.history if "diffusion" in k and k.startswith("train")]
    return max((len(model.history[k].dropna()) for k in keys), default=0)


def run_arm(
    arm: str, saved: Path, ctx: Q.RunContext, heldout, accelerator: str, cap: int | None
) -> dict[str, Any]:
    """Train the diffusion of one arm from the saved autoencoder, generate, evaluate."""
    model = sc_sed.SEDModel.load(str(saved), adata=ctx.train)
    kwargs = diffusion_kwargs(arm, ctx.budget, cap)
    start = time.perf_counter()
    model.train_diffusion(
        **kwargs, accelerator=accelerator, seed=ctx.seed, enable_progress_bar=ctx.progress
    )
    seconds = time.perf_counter() - start
    run = Q.sed_samples(dataclasses.replace(ctx, heldout=None), model, seconds)
    table = Q.evaluate_run(heldout, run.synth, ctx.train, ctx.data, ctx.seed)
    scores = Q.overall(table)
    epochs = _epochs_run(model)
    return {
        "arm": arm,
        "epochs": epochs,
        "train_diffusion_seconds": round(seconds, 1),
        "generate_seconds": round(run.generate_seconds, 1),
        **{k: scores.get(k) for k in Q.KEY_METRICS},
    }


def run(args: argparse.Namespace) -> pd.DataFrame:
    """Train the autoencoder once, then each arm's diffusion; print and save the table."""
    env = environment(resolve_device("cuda" if args.device == "gpu" else args.device))
    env.update(Q.code_state())
    data = Q.load_dataset(args)
    budget = Q.resolve_budget(args, Q.budget_key(data))
    train, heldout = Q.split(data, args.heldout_fraction, args.seed)
    sc_sed.SEDModel.setup_anndata(train, layer=data.layer, labels_key=data.labels_key)
    ctx = Q.RunContext(
        train, data, budget, Q.label_counts(heldout, data.labels_key), args.device,
        args.seed, args.gen_batch_size, False,
    )  # fmt: skip
    print(f"{data.name}: train {train.n_obs}, held-out {heldout.n_obs}; {budget}", flush=True)
    model = Q.build_sed(ctx)
    start = time.perf_counter()
    model.train_autoencoder(
        budget.sed_epochs, accelerator=args.device, **Q.sed_batch_kwargs(budget),
        enable_progress_bar=False,
    )  # fmt: skip
    ae_seconds = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/ae", overwrite=True)
        for arm in [*args.arms, *(f"fixed_{n}" for n in args.fixed_epochs)]:
            print(f"arm {arm} ...", flush=True)
            rows.append(run_arm(arm, Path(f"{tmp}/ae"), ctx, heldout, args.device, args.cap))
            print(f"arm {arm}: {rows[-1]}", flush=True)  # kept if a later arm is cut short
    table = pd.DataFrame(rows).set_index("arm")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string())
    payload = {
        "dataset": data.name,
        "budget": dataclasses.asdict(budget),
        "cap": args.cap,
        "autoencoder_seconds": round(ae_seconds, 1),
        "environment": env,
        "arms": Q._jsonable(rows),
    }
    name = f"{data.name}_diffusion_budget" + (f"_{args.tag}" if args.tag else "")
    path = write_json(args.summary_dir / f"{name}.json", payload)
    print(f"wrote {path}", flush=True)
    return table


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """Run the benchmark; torch's thread count is restored afterwards."""
    return Q.run_benchmark(parse_args(argv), run)


if __name__ == "__main__":
    main()
