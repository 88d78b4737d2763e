"""What gives SED's synthetic cells away: the explained real-vs-synthetic discriminator on PBMC.

SED is trained with its defaults (``SEDModel(adata, preset="cpu"); model.train()``) on the
demo's training split of the bundled PBMC counts (20% of each label held out), or loaded from
``--model DIR``. It generates the held-out label mix and the training label mix. Then
:func:`sc_sed.tl.discriminator_features` (PCs of ``evaluate``'s space plus per-cell log library
size, log detected genes and top-50 share) is run with gradient-boosted trees and with logistic
regression, overall and per cell type, on three pairs:

* ``heldout``: held-out real cells vs synthetic cells of their label mix (``evaluate``'s protocol;
  only 140 real cells, half of them spent on the PCA, so it is noisy);
* ``train``: training cells vs synthetic cells of the training mix (4x the rows: more power),
  with the PCA fitted on the held-out cells (``reference=``): fitted on training cells, it
  would spread the very cells a generator learned from wider than fresh ones, and even copies
  of the training cells would be told apart;
* ``copies``: training cells vs copies of them drawn with replacement, in that same space: what
  a generator that only memorised its training cells scores there (about 0.5);
* ``real_vs_real``: training cells vs held-out real cells, the chance reference.

Per cell type it also prints mean and SD of the per-cell summaries (:func:`sc_sed.tl.row_summaries`)
of training cells and of synthetic cells of the training mix. The tables are printed and written
to ``--out/discriminator.json``.

Run ``python benchmarks/discriminator.py --help``; ``--smoke`` is a seconds-long check.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, quiet, resolve_device, write_json  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed._demo import stratified_split  # noqa: E402

LAYER = "counts"
LABELS = "bulk_labels"
CLASSIFIERS = ("gradient_boosting", "logistic")
#: Tiny sizes and epochs for ``--smoke`` (a check that the script runs, not a measurement).
SMOKE_SED = {"n_hidden": 16, "n_latent": 4, "denoiser_widths": (16, 8)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_discriminator", help="Output folder.")
    p.add_argument("--model", type=Path, help="Saved SEDModel folder to load instead of training.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the split, training, generation.")
    p.add_argument("--n-steps", type=int, default=50, help="SED's DDIM sampling steps.")
    p.add_argument("--n-repeats", type=int, default=5, help="Permutations per feature and fold.")
    p.add_argument(
        "--stages",
        action="store_true",
        help="also score the stages against the training cells: the decoder alone "
        "(reconstructed training cells) and like=training cells at strength 0.5",
    )
    p.add_argument(
        "--ae-epochs",
        type=int,
        help="Autoencoder epochs (default: the recipe's; not with --model).",
    )
    p.add_argument("--smoke", action="store_true", help="Tiny model, one epoch each.")
    return p.parse_args(argv)


def _mix(adata) -> dict[str, int]:
    counts = adata.obs[LABELS].value_counts()
    return {str(k): int(v) for k, v in counts.items() if v > 0}


def get_model(train, args: argparse.Namespace) -> tuple[Any, float]:
    """Load ``--model`` or train SED with its CPU defaults (tiny with ``--smoke``); save it."""
    if args.model is not None:
        return sc_sed.SEDModel.load(args.model, adata=train, accelerator="cpu"), 0.0
    sc_sed.SEDModel.setup_anndata(train, layer=LAYER, labels_key=LABELS)
    model = sc_sed.SEDModel(train, preset="cpu", **(SMOKE_SED if args.smoke else {}))
    epochs = (1, 1) if args.smoke else (args.ae_epochs, None)
    start = time.perf_counter()
    model.train(*epochs, accelerator="cpu", seed=args.seed, enable_progress_bar=False)
    seconds = time.perf_counter() - start
    model.save(Path(args.out) / "model", overwrite=True)
    return model, seconds


def explain(
    real, synth, args: argparse.Namespace, reference=None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """AUROCs and the top features, overall and per type, for each classifier; the trees' table."""
    out, tables = {}, {}
    for classifier in CLASSIFIERS:
        df = tables[classifier] = sc_sed.tl.discriminator_features(
            real, synth, layer=LAYER, groupby=LABELS, classifier=classifier, seed=args.seed,
            n_repeats=1 if args.smoke else args.n_repeats, n_folds=3 if args.smoke else 5,
            n_pcs=5 if args.smoke else 30, reference=reference,
        )  # fmt: skip
        per_group = {}
        for group, sub in df.groupby("group", sort=False):
            top = sub.head(3)[["feature", "importance", "univariate_auroc", "spread_auroc"]]
            per_group[str(group)] = {
                "auroc": df.attrs["sc_sed"]["auroc"][group],
                "n_rows": df.attrs["sc_sed"]["n_rows"][group],
                "top": top.round(4).to_dict(orient="records"),
                "summaries": sub[sub["kind"] == "summary"]
                .drop(columns=["group", "kind"])
                .round(4)
                .to_dict(orient="records"),
            }
        out[classifier] = per_group
    return out, tables["gradient_boosting"]


def pc_sweep(real, synth, args: argparse.Namespace, reference=None) -> dict[str, dict[int, float]]:
    """Out-of-fold AUROC on the first k PCs only (no summaries), for each classifier and k."""
    out = {}
    for classifier in CLASSIFIERS:
        out[classifier] = {}
        for k in (2, 5, 10, 20, 30) if not args.smoke else (2, 5):
            df = sc_sed.tl.discriminator_features(
                real, synth, layer=LAYER, n_pcs=k, summaries=False, classifier=classifier,
                seed=args.seed, n_repeats=1, n_folds=3 if args.smoke else 5, reference=reference,
            )  # fmt: skip
            out[classifier][k] = df.attrs["sc_sed"]["auroc"]["all"]["pcs_only"]
    return out


def sd_ratios(df: pd.DataFrame) -> dict[str, float]:
    """SD of synthetic over real cells along each PC (in PC order) and summary (whole data)."""
    sub = df[df["group"] == "all"]
    sub = sub.assign(_n=sub["feature"].str.extract(r"^PC(\d+)$")[0].astype(float))
    sub = sub.sort_values(["kind", "_n"], kind="stable")  # "pc" before "summary"
    return dict(zip(sub["feature"], (sub["sd_synth"] / sub["sd_real"]).round(4), strict=True))


def summary_stats(adatas: dict[str, Any]) -> pd.DataFrame:
    """Mean and SD of the per-cell summaries by cell type, one column block per object."""
    frames = []
    for name, adata in adatas.items():
        s = sc_sed.tl.row_summaries(adata.layers[LAYER])
        s[LABELS] = adata.obs[LABELS].astype(str).to_numpy()
        stats = s.groupby(LABELS).agg(["mean", "std"])
        stats.columns = [f"{feat}_{stat}_{name}" for feat, stat in stats.columns]
        frames.append(stats)
    return pd.concat(frames, axis=1)


def _figure(trees: pd.DataFrame, out: Path) -> None:
    """The trees' importances for training cells vs synthetic cells, as ``train_features.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    ax = sc_sed.pl.discriminator_features(trees, n_features=15, show=False)
    ax.figure.savefig(out / "train_features.png", dpi=120, bbox_inches="tight")
    plt.close("all")


def _print(results: dict[str, Any]) -> None:
    rows = []
    for pair, by_clf in results.items():
        for clf, groups in by_clf.items():
            for group, r in groups.items():
                rows.append(
                    {
                        "pair": pair,
                        "classifier": clf,
                        "group": group,
                        "n_real": r["n_rows"]["real"],
                        "auroc": r["auroc"]["all_features"],
                        "pcs_only": r["auroc"]["pcs_only"],
                        "summaries_only": r["auroc"]["summaries_only"],
                        "top": ", ".join(
                            f"{t['feature']} {t['importance']:.3f} "
                            f"({t['univariate_auroc']:.2f}/{t['spread_auroc']:.2f})"
                            for t in r["top"]
                            if not np.isnan(t["importance"])
                        ),
                    }
                )
    print("top: feature, importance (univariate AUROC / spread AUROC)")
    print(pd.DataFrame(rows).to_string(float_format=lambda v: f"{v:.3f}", index=False))


def _stages(model, train, heldout, args: argparse.Namespace, gen: dict) -> dict[str, tuple]:
    """Training cells against the decoder alone and against their partly re-noised latents.

    ``reconstructed``: each training cell encoded and decoded (the decoder's sampling only);
    ``like_0.5``: ``generate(like=train, strength=0.5)`` (latents half re-noised and denoised);
    ``train`` (the training label mix from pure noise) is the full generator. Each is scored in
    the space fitted on ``heldout``.
    """
    rec = model.reconstruct(train, seed=args.seed)
    like = model.generate(like=train, strength=0.5, seed=args.seed, **gen)
    return {
        "reconstructed": (train, _with_counts(rec), heldout),
        "like_0.5": (train, _with_counts(like), heldout),
    }


def _copies(adata, seed: int):
    """Rows of ``adata`` drawn with replacement: a generator that only memorised them."""
    rows = np.random.default_rng(seed).integers(0, adata.n_obs, adata.n_obs)
    out = adata[rows].copy()
    out.obs_names = [f"copy{i}" for i in range(out.n_obs)]
    return out


def _with_counts(adata):
    """Generated output with its values in the ``counts`` layer the real cells use."""
    if LAYER not in adata.layers:
        adata.layers[LAYER] = adata.X.copy()
    return adata


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train (or load), generate, explain; print the tables and write ``discriminator.json``."""
    args = parse_args(argv)
    if args.model is not None and args.ae_epochs is not None:
        raise SystemExit("--ae-epochs trains a new model; it cannot be combined with --model.")
    quiet()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        adata = sc_sed.datasets.pbmc68k_counts()
        train_idx, held_idx = stratified_split(adata.obs[LABELS], 0.2, args.seed)
        train, heldout = adata[train_idx].copy(), adata[held_idx].copy()
        model, train_s = get_model(train, args)
        gen = {"n_steps": 2 if args.smoke else args.n_steps, "enable_progress_bar": False}
        synth_held = model.generate(None, labels=_mix(heldout), seed=args.seed, **gen)
        synth_train = model.generate(None, labels=_mix(train), seed=args.seed + 1, **gen)
        stages = _stages(model, train, heldout, args, gen) if args.stages else {}
    finally:
        torch.set_num_threads(threads)
    pairs = {  # name: (real, synthetic, reference of the PCA; None = a held-aside half of real)
        "heldout": (heldout, synth_held, None),
        "train": (train, synth_train, heldout),
        "copies": (train, _copies(train, args.seed), heldout),
        "real_vs_real": (train, heldout, None),
        **stages,
    }
    explained = {name: explain(*pair[:2], args, pair[2]) for name, pair in pairs.items()}
    results = {name: out for name, (out, _) in explained.items()}
    _print(results)
    sweep = {name: pc_sweep(*pair[:2], args, pair[2]) for name, pair in pairs.items()}
    ratios = {name: sd_ratios(trees) for name, (_, trees) in explained.items()}
    _figure(explained["train"][1], Path(args.out))
    for name in pairs:
        pcs = [v for f, v in ratios[name].items() if f.startswith("PC")]
        print(
            f"{name}: AUROC on the first k PCs {sweep[name]}; SD synthetic/real along "
            f"PC1-6 {np.median(pcs[:6]):.2f}, PC7-30 {np.median(pcs[6:]):.2f} (medians)"
        )
    stats = summary_stats({"real": train, "synth": synth_train})
    print(stats.round(3).to_string())
    result = {
        "dataset": {"name": "pbmc68k", "n_train": len(train_idx), "n_heldout": len(held_idx)},
        "settings": {"threads": args.threads, "seed": args.seed, "n_steps": args.n_steps,
                     "smoke": args.smoke, "model": str(args.model) if args.model else None,
                     "train_seconds": train_s, "ae_epochs": args.ae_epochs,
                     "recipe": getattr(model, "recipe_", None)},
        "pairs": results,
        "auroc_by_n_pcs": sweep,
        "sd_ratio_synth_over_real": ratios,
        "summary_stats_by_type": stats.round(4).reset_index().to_dict(orient="records"),
        "environment": environment(resolve_device("cpu")),
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "discriminator.json", result)
    return result


if __name__ == "__main__":
    main()
