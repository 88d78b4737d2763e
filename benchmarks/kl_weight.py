"""The autoencoder's KL weight against the decoder's extra spread, on PBMC.

A decoded cell is spread wider than real cells along the minor principal components
(``benchmarks/README.md``, "Which stage adds the spread"). One explanation: with a KL weight
of 1e-6 the latent is free to hold each cell's own sampling noise, which the decoder then
reproduces *and* draws afresh on top, so noise-dominated directions get about twice the
real variance (an SD ratio near 1.41). A larger weight keeps the noise out of the latent.

For each KL weight (and seed) SED is built with the CPU recipe and that ``kl_weight`` on
the demo's training split of the bundled PBMC counts (20% of each label held out), its
autoencoder trained, and the training cells reconstructed (encoded and decoded, one decoder
draw). Every PCA here is fitted on the held-out cells, which neither the model nor the
compared sets contain: a PCA fitted on the training cells themselves spreads them about twice
as wide along PCs 7-30 as any fresh cell, so a copy of the training set would look too broad
(``tl.discriminator_features``, "reference"). Per seed:

* ``floor_auroc``: the trees telling one random half of the training cells from the other
  (the reference for the AUROCs below; about 0.5).

Per arm:

* ``rec_auroc``: gradient-boosted trees telling training cells from their reconstructions
  (:func:`sc_sed.tl.discriminator_features`, 30 PCs and the per-cell summaries);
* ``rec_sd_pc1_6``, ``rec_sd_pc7_30``: median SD of reconstructions over training cells along
  those PCs;
* ``rec_corr_pc1_6``, ``rec_corr_pc7_30``: median correlation, across cells, of a cell's PC
  score with its own reconstruction's (how much of the cell, noise included, the latent
  carries);
* with ``--generate``: the diffusion trained too, the held-out label mix generated and
  scored by :func:`sc_sed.tl.evaluate` (``discriminability_auroc``, ``mmd``,
  ``label_accuracy``); and for generated cells of the training mix (as many cells as the
  training split, so the trees have enough cells to see minor PCs) ``gen_auroc``, the
  gradient-boosted trees telling them from the training cells, and ``gen_sd_pc7_30``.

Paired by seed with 95% t-intervals against the first weight. The table is printed and
written to ``--out/kl_weight.json`` after every arm. Runs split over processes (other
weights or seeds) are summarised together with ``--merge a/kl_weight.json b/kl_weight.json``
(the first weight given, or of the first file, is the reference).

Run ``python benchmarks/kl_weight.py --help``; ``--smoke`` is a seconds-long check.
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
import scanpy as sc
import scvi
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    environment,
    quiet,
    read_mergeable,
    resolve_device,
    t_interval,
    write_json,
)
from discriminator import _mix, _with_counts, sd_ratios  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed._demo import stratified_split  # noqa: E402

LAYER = "counts"
LABELS = "bulk_labels"
COLUMNS = (
    "ae_seconds",
    "floor_auroc",
    "rec_auroc",
    "rec_sd_pc1_6",
    "rec_sd_pc7_30",
    "rec_corr_pc1_6",
    "rec_corr_pc7_30",
    "discriminability_auroc",
    "mmd",
    "label_accuracy",
    "gen_auroc",
    "gen_sd_pc7_30",
)
#: The weights run when ``--kl-weights`` is not given.
KL_WEIGHTS = (1e-6, 1e-3, 1e-2, 1e-1, 1.0)
#: Tiny sizes and epochs for ``--smoke`` (a check that the script runs, not a measurement).
SMOKE_SED = {"n_hidden": 16, "n_latent": 4, "denoiser_widths": (16, 8)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_kl_weight", help="Output folder.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="Split/training seeds.")
    p.add_argument(
        "--kl-weights",
        type=float,
        nargs="+",
        default=None,
        help="KL weights; the first is the reference of the paired differences "
        f"(default {' '.join(f'{w:g}' for w in KL_WEIGHTS)}; with --merge, the files' weights).",
    )
    p.add_argument("--generate", action="store_true", help="Also train the diffusion and score.")
    p.add_argument("--n-steps", type=int, default=50, help="DDIM sampling steps.")
    p.add_argument("--smoke", action="store_true", help="Tiny model, one epoch each.")
    p.add_argument(
        "--merge", type=Path, nargs="+", metavar="JSON",
        help="Summarise these runs' kl_weight.json together into --out; nothing is trained.",
    )  # fmt: skip
    return p.parse_args(argv)


def pc_scores(fit_on, others: Sequence[Any], n_pcs: int) -> list[np.ndarray]:
    """PC scores of ``others`` in the PCA fitted on ``fit_on`` (normalised to 1e4, ``log1p``)."""
    from sklearn.decomposition import PCA

    def lognorm(adata) -> np.ndarray:
        a = sc.AnnData(adata.layers[LAYER].astype(np.float32))
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        return np.asarray(a.X.todense() if hasattr(a.X, "todense") else a.X)

    pca = PCA(n_components=n_pcs, random_state=0).fit(lognorm(fit_on))
    return [pca.transform(lognorm(a)) for a in others]


def paired_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, the correlation across rows of ``a`` and ``b`` (same rows, same order)."""
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def trees_auroc(real, synth, heldout, seed: int, args: argparse.Namespace):
    """:func:`sc_sed.tl.discriminator_features` (trees) in the space fitted on ``heldout``."""
    return sc_sed.tl.discriminator_features(
        real, synth, layer=LAYER, classifier="gradient_boosting", seed=seed, n_repeats=1,
        n_folds=3 if args.smoke else 5, n_pcs=5 if args.smoke else 30, reference=heldout,
    )  # fmt: skip


def floor_auroc(train, heldout, seed: int, args: argparse.Namespace) -> float:
    """The trees' AUROC between two random halves of ``train`` (the AUROCs' reference)."""
    halves = np.random.default_rng(seed).permutation(train.n_obs)
    a, b = np.sort(halves[: train.n_obs // 2]), np.sort(halves[train.n_obs // 2 :])
    table = trees_auroc(train[a].copy(), train[b].copy(), heldout, seed, args)
    return table.attrs["sc_sed"]["auroc"]["all"]["all_features"]


def run_arm(
    train, heldout, kl_weight: float, seed: int, args: argparse.Namespace, floor: float
) -> dict:
    """Train one arm and return its row of :data:`COLUMNS` (None where not measured)."""
    train = train.copy()
    sc_sed.SEDModel.setup_anndata(train, layer=LAYER, labels_key=LABELS)
    scvi.settings.seed = seed  # initial weights, split and minibatch order of this seed
    sizes = SMOKE_SED if args.smoke else {}
    model = sc_sed.SEDModel(train, preset="cpu", kl_weight=kl_weight, **sizes)
    start = time.perf_counter()
    model.train_autoencoder(1 if args.smoke else None, accelerator="cpu", enable_progress_bar=False)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(kl_weight=kl_weight, seed=seed, ae_seconds=time.perf_counter() - start)
    row["floor_auroc"] = floor
    rec = _with_counts(model.reconstruct(train, seed=seed))
    n_pcs = 5 if args.smoke else 30
    trees = trees_auroc(train, rec, heldout, seed, args)
    row["rec_auroc"] = trees.attrs["sc_sed"]["auroc"]["all"]["all_features"]
    real_scores, rec_scores = pc_scores(heldout, [train, rec], n_pcs)
    sd = rec_scores.std(0) / real_scores.std(0)
    corr = paired_corr(real_scores, rec_scores)
    cut = min(6, n_pcs - 1)
    row.update(
        rec_sd_pc1_6=float(np.median(sd[:cut])),
        rec_sd_pc7_30=float(np.median(sd[cut:])),
        rec_corr_pc1_6=float(np.median(corr[:cut])),
        rec_corr_pc7_30=float(np.median(corr[cut:])),
    )
    if args.generate:
        model.train_diffusion(
            1 if args.smoke else None, accelerator="cpu", seed=seed, enable_progress_bar=False
        )
        gen = {"n_steps": 2 if args.smoke else args.n_steps, "enable_progress_bar": False}
        synth = model.generate(None, labels=_mix(heldout), seed=seed, **gen)
        scores = sc_sed.tl.evaluate(
            heldout, _with_counts(synth), layer=LAYER, groupby=LABELS, seed=seed, markers=False,
            metrics=("discriminability_auroc", "mmd", "label_accuracy"),
            n_pcs=n_pcs,
        )  # fmt: skip
        overall = scores[scores["group"] == "all"]
        for name in ("discriminability_auroc", "mmd", "label_accuracy"):
            values = overall.loc[overall["metric"] == name, "value"]
            row[name] = float(values.iloc[0]) if len(values) else None
        synth_train = _with_counts(model.generate(None, labels=_mix(train), seed=seed + 1, **gen))
        gen_trees = trees_auroc(train, synth_train, heldout, seed, args)
        row["gen_auroc"] = gen_trees.attrs["sc_sed"]["auroc"]["all"]["all_features"]
        pcs = [v for f, v in sd_ratios(gen_trees).items() if f.startswith("PC")]
        row["gen_sd_pc7_30"] = float(np.median(pcs[cut:]))
    return row


def summarise(runs: list[dict], weights: Sequence[float]) -> pd.DataFrame:
    """Mean per weight and, against the first weight, paired differences with 95% t-intervals."""
    df = pd.DataFrame(runs)
    rows = []
    ref = df[df["kl_weight"] == weights[0]].set_index("seed")
    for w in weights:
        sub = df[df["kl_weight"] == w].set_index("seed")
        row: dict[str, Any] = {"kl_weight": w, "n_seeds": len(sub)}
        for col in COLUMNS:
            vals = pd.to_numeric(sub[col], errors="coerce")
            row[col] = vals.mean()
            if w != weights[0] and col != "ae_seconds":
                common = sub.index.intersection(ref.index)
                diff = pd.to_numeric(sub.loc[common, col], errors="coerce") - pd.to_numeric(
                    ref.loc[common, col], errors="coerce"
                )
                ci = t_interval(diff.tolist())
                if ci["ci_low"] is not None:
                    row[f"{col}_diff_ci"] = f"[{ci['ci_low']:+.3f}, {ci['ci_high']:+.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


#: Settings that may differ between runs that ``--merge`` combines (the rest must agree).
MERGE_FREE = ("seeds", "kl_weights", "threads")


def merge(paths: Sequence[Path], out: Path, weights: Sequence[float] | None) -> dict[str, Any]:
    """Summarise the runs of several ``kl_weight.json`` files together (no training).

    The files must agree on every setting but seeds, weights and threads, and no
    (weight, seed) arm may be in two of them. ``weights`` orders the summary (its first is
    the reference); by default the files' weights in order of first appearance.
    """
    results, first, _ = read_mergeable(
        paths, MERGE_FREE, lambda res: [(r["kl_weight"], r["seed"]) for r in res["runs"]], "arm"
    )
    runs = [run for res in results for run in res["runs"]]
    order = list(weights) if weights else list(dict.fromkeys(r["kl_weight"] for r in runs))
    table = summarise(runs, order)
    result = {
        "dataset": results[0]["dataset"],
        "settings": {**first, "seeds": sorted({r["seed"] for r in runs}), "kl_weights": order,
                     "threads": sorted({r["settings"]["threads"] for r in results}),
                     "merged": [str(p) for p in paths]},
        "complete": all(r["complete"] for r in results),
        "runs": runs,
        "summary": table.to_dict(orient="records"),
        "environment": results[0]["environment"],
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "kl_weight.json", result)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every (weight, seed) arm; print the table and write ``kl_weight.json`` as it goes."""
    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out), args.kl_weights)
    args.kl_weights = list(args.kl_weights or KL_WEIGHTS)
    quiet()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    adata = sc_sed.datasets.pbmc68k_counts()
    runs: list[dict] = []
    result: dict[str, Any] = {}
    try:
        for seed in args.seeds:
            train_idx, held_idx = stratified_split(adata.obs[LABELS], 0.2, seed)
            train, heldout = adata[train_idx].copy(), adata[held_idx].copy()
            floor = floor_auroc(train, heldout, seed, args)
            for w in args.kl_weights:
                print(f"seed {seed}, kl_weight {w:g} ...", flush=True)
                runs.append(run_arm(train, heldout, w, seed, args, floor))
                print({k: v for k, v in runs[-1].items() if v is not None}, flush=True)
                table = summarise(runs, args.kl_weights)
                result = {
                    "dataset": {"name": "pbmc68k", "n_train": len(train_idx),
                                "n_heldout": len(held_idx)},
                    "settings": {"threads": args.threads, "seeds": args.seeds,
                                 "kl_weights": args.kl_weights, "generate": args.generate,
                                 "n_steps": args.n_steps, "smoke": args.smoke},
                    "complete": False,
                    "runs": runs,
                    "summary": table.to_dict(orient="records"),
                    "environment": environment(resolve_device("cpu")),
                }  # fmt: skip
                write_json(out / "kl_weight.json", result)
    finally:
        torch.set_num_threads(threads)
    result["complete"] = True
    write_json(out / "kl_weight.json", result)
    print(summarise(runs, args.kl_weights).to_string(float_format=lambda v: f"{v:.3f}"))
    return result


if __name__ == "__main__":
    main()
