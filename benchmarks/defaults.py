"""SED with its defaults vs scVI with its defaults: training time and fidelity, side by side.

Both are trained on the same training split (20% of each label held out) of PBMC 68k counts
(bundled; the default) or, with ``--bladder [PATH]``, the 20,670-gene mouse bladder counts in
``../shared/data``, with nothing but their defaults: ``SEDModel(adata); model.train()`` (the recipe
the model chooses for the data and the device, :data:`sc_sed.model.PRESETS`) and
``scvi.model.SCVI`` with its default sizes and epochs (sampled from its prior through
:class:`sc_sed.baselines.ScVIPrior`). Each generates the held-out label mix, judged by
:func:`sc_sed.tl.evaluate` against the held-out cells. The table is printed and written to
``--out/defaults.json``; times are wall-clock seconds on this machine in this run.

Run ``python benchmarks/defaults.py --help``; ``--smoke`` is a seconds-long check.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, quiet, resolve_device, write_json  # noqa: E402
from quality import BLADDER_FILE, read_bladder  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed._demo import stratified_split  # noqa: E402

LAYER = "counts"
COLUMNS = (
    "train_seconds",
    "generate_seconds",
    "scc",
    "mmd",
    "discriminability_auroc",
    "label_accuracy",
    "zero_fraction_real",
    "zero_fraction_synth",
    "n_spurious_features",
)
#: Tiny sizes and epochs for ``--smoke`` (a check that the script runs, not a measurement).
SMOKE_SED = {"n_hidden": 16, "n_latent": 4, "denoiser_widths": (16, 8)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_defaults", help="Output folder.")
    p.add_argument("--device", default="cpu", choices=("cpu", "auto"), help="Accelerator.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the split and of training.")
    p.add_argument("--n-steps", type=int, default=50, help="SED's DDIM sampling steps.")
    p.add_argument(
        "--bladder",
        type=Path,
        nargs="?",
        const=BLADDER_FILE,
        help=f"mouse bladder HDF5 (X counts, Y labels) instead of PBMC; default {BLADDER_FILE}",
    )
    p.add_argument("--smoke", action="store_true", help="Tiny model, one epoch each.")
    return p.parse_args(argv)


def _timed(fn) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def load(args: argparse.Namespace) -> tuple[Any, str, str]:
    """The data set, its name and its label column."""
    if args.bladder is not None:
        return read_bladder(args.bladder), "bladder", "cluster"
    return sc_sed.datasets.pbmc68k_counts(), "pbmc68k", "bulk_labels"


def run_sed(train, mix: dict, args: argparse.Namespace) -> tuple[Any, float, float, dict]:
    """Train ``SEDModel`` with its defaults (tiny with ``--smoke``); generate ``mix``."""
    sc_sed.SEDModel.setup_anndata(train, layer=LAYER, labels_key=args.labels_key)
    preset = "cpu" if args.device == "cpu" else "auto"
    model = sc_sed.SEDModel(train, preset=preset, **(SMOKE_SED if args.smoke else {}))
    epochs = (1, 1) if args.smoke else (None, None)
    _, train_s = _timed(
        lambda: model.train(
            *epochs, accelerator=args.device, seed=args.seed, enable_progress_bar=False
        )
    )
    synth, gen_s = _timed(
        lambda: model.generate(
            None, labels=mix, n_steps=2 if args.smoke else args.n_steps, seed=args.seed,
            enable_progress_bar=False,
        )
    )
    return synth, train_s, gen_s, model.recipe_


def run_scvi(train, mix: dict, args: argparse.Namespace) -> tuple[Any, float, float, dict]:
    """Train scVI with its defaults (its data-size epochs; 1 with ``--smoke``); sample ``mix``."""
    from sc_sed.baselines import ScVIPrior

    model = ScVIPrior(train, layer=LAYER, labels_key=args.labels_key)
    epochs = 1 if args.smoke else None
    _, train_s = _timed(
        lambda: model.train(
            epochs, train_size=0.9, accelerator=args.device, seed=args.seed, enable_progress_bar=False
        )
    )
    synth, gen_s = _timed(
        lambda: model.generate(None, labels=mix, seed=args.seed, enable_progress_bar=False)
    )
    return synth, train_s, gen_s, {"max_epochs": int(model.scvi_.history["elbo_train"].shape[0])}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run both methods, print the side-by-side table, write ``defaults.json``."""
    args = parse_args(argv)
    quiet()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        adata, name, args.labels_key = load(args)
        train_idx, held_idx = stratified_split(adata.obs[args.labels_key], 0.2, args.seed)
        heldout = adata[held_idx].copy()
        counts = heldout.obs[args.labels_key].value_counts()
        mix = {k: int(v) for k, v in counts.items() if v > 0}
        rows, settings = {}, {}
        for name, run in (("SED defaults", run_sed), ("scVI defaults", run_scvi)):
            print(f"training {name} ...", flush=True)
            train = adata[train_idx].copy()
            synth, train_s, gen_s, settings[name] = run(train, mix, args)
            metrics = sc_sed.tl.evaluate(
                heldout, synth, layer=LAYER, groupby=args.labels_key, train=train, seed=args.seed
            )
            overall = metrics[metrics["group"] == "all"].set_index("metric")["value"]
            rows[name] = {"train_seconds": train_s, "generate_seconds": gen_s}
            rows[name].update({k: float(overall[k]) for k in COLUMNS if k in overall.index})
    finally:
        torch.set_num_threads(threads)
    table = pd.DataFrame(rows).reindex(COLUMNS)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    result = {
        "dataset": {"name": name, "n_train": len(train_idx), "n_heldout": len(held_idx)},
        "settings": {"threads": args.threads, "device": args.device, "smoke": args.smoke,
                     "recipes": settings},
        "methods": rows,
        "environment": environment(resolve_device(args.device)),
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "defaults.json", result)
    return result


if __name__ == "__main__":
    main()
