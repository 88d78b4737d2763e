"""Does augmenting a rare cell type help a classifier? The protocol of cscGAN (Marouf et al. 2020).

For each data set, rare type, ``n_rare`` and seed:

1. **Split** the real cells, stratified by type and seeded: ``--test-fraction`` test,
   ``--val-fraction`` validation, the rest the training pool. Test and validation cells never
   reach a generator.
2. **Cut** the rare type down to ``n_rare`` randomly kept training cells (the other types keep
   all their training cells). Every generator is trained on this cut training set only. A
   (type, ``n_rare``) whose pool has fewer than ``n_rare`` cells is skipped and listed.
3. **Augment** with ``n_synth`` rare cells: by default as many as bring the type up to the
   median size of the other types in the training set, and at least ``n_rare`` (so every arm
   adds cells); ``--n-synth`` fixes it. Arms: ``real`` (nothing added), ``duplicates``
   (random oversampling), ``smote`` (SMOTE in 30-PC space, mapped back to genes by the PCA's
   inverse), ``scvi`` (:class:`sc_sed.baselines.ScVIPrior`: scVI with the label as its batch
   covariate, ``z`` from the prior), ``sed`` (SED label-conditional, guidance 1),
   ``sed_guided`` (the guidance of ``--guidance-grid`` with the best rare-type F1 of the
   logistic regression on the **validation** cells), ``sed_like`` (``generate(like=the rare
   training cells)``, default strength). One SED model per cut serves its three SED arms;
   it uses the model's defaults (``SEDModel(adata); model.train()``) unless
   ``--sed-epochs``/``--sed-diffusion-epochs`` say otherwise.
4. **Classify** the held-out test cells with logistic regression and a kNN (k=10), both on
   30 principal components of the log-normalised (1e4 per cell, ``log1p``) augmented training
   set (the PCA fitted on it). Per arm: rare-type recall and F1, macro F1; paired differences
   (same seed and split) against ``real`` and ``duplicates`` with 95% t-intervals over seeds.
5. **Judge the synthetic cells**: :func:`sc_sed.tl.marker_fidelity` of the rare type (its
   synthetic cells plus the real training cells of the other types, against the test cells;
   the split-half reference beside it; ``real`` shows the ``n_rare`` kept cells themselves,
   ``smote`` has no counts and no number), and ``ref_accuracy``: the share of the synthetic
   cells that a logistic regression trained on the whole real training pool (uncut) calls
   the rare type (``ref_accuracy_test``: the same on the real test cells of the type).

Printed: a table per (set, type, n_rare); written to ``--out``: ``augmentation.json`` (every
per-seed record, the summary with CIs, the settings) and ``augmentation.md``, both rewritten
after every cut (marked incomplete until the run ends). A long protocol can be split by seed
across processes or machines (``--seed-start 0 --seeds 3`` and ``--seed-start 3 --seeds 2``)
and summarised together with ``--merge run1/augmentation.json run2/augmentation.json``.

Run ``python benchmarks/augmentation.py --help``; ``--smoke`` is a one-minute check.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _augment_arms as arms  # noqa: E402
from _augment_score import (  # noqa: E402
    CLASSIFIERS,
    Space,
    classify,
    lognorm,
    marker_rows,
    summarise,
)
from _common import environment, quiet, read_mergeable, resolve_device, write_json  # noqa: E402
from quality import BLADDER_FILE, read_bladder  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed._demo import stratified_split  # noqa: E402

ARMS = ("real", "duplicates", "smote", "scvi", "sed", "sed_guided", "sed_like")
BASELINES = ("real", "duplicates")
#: Default rare types, the hard ones: PBMC's overlapping T-cell subsets (the two CD8+ types
#: and the CD4+ T Reg; the CD4+ naive and memory sets have too few cells to cut) and the
#: bladder clusters a logistic regression on 30 PCs confuses most (6 with 3/4, 9 with 4,
#: 10 with 3/6; 5-fold cross-validated F1 0.83, 0.88, 0.93 on all cells).
TYPES = {
    "pbmc68k": ("CD4+/CD25 T Reg", "CD8+ Cytotoxic T", "CD8+/CD45RA+ Naive Cytotoxic"),
    "bladder": ("6", "9", "10"),
}
SMOKE_TYPE = ("pbmc68k", "CD19+ B")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_augmentation", help="Output folder.")
    p.add_argument(
        "--bladder", type=Path, nargs="?", const=BLADDER_FILE,
        help=f"also the mouse bladder HDF5 (X counts, Y labels); default {BLADDER_FILE}",
    )  # fmt: skip
    p.add_argument("--no-pbmc", action="store_true", help="Leave out PBMC (with --bladder).")
    p.add_argument("--types", nargs="+", help="Rare types (each used in the sets that have it).")
    p.add_argument("--n-rare", type=int, nargs="+", default=[5, 10, 25, 50])
    p.add_argument("--seeds", type=int, default=5, help="Number of seeds (splits and cuts).")
    p.add_argument(
        "--seed-start", type=int, default=0,
        help="First seed (seeds run from it): split one protocol across processes or machines.",
    )  # fmt: skip
    p.add_argument(
        "--merge", type=Path, nargs="+", metavar="JSON",
        help="Run nothing: summarise the cuts of several augmentation.json files into --out.",
    )  # fmt: skip
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--guidance-grid", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    p.add_argument("--n-synth", type=int, help="Synthetic cells added (default: see above).")
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--sed-epochs", type=int, help="SED autoencoder epochs (default: recipe).")
    p.add_argument("--sed-diffusion-epochs", type=int, help="SED diffusion epochs (recipe).")
    p.add_argument("--scvi-epochs", type=int, help="scVI epochs (default: scVI's own).")
    p.add_argument("--n-steps", type=int, default=50, help="SED's DDIM sampling steps.")
    p.add_argument("--device", default="cpu", choices=("cpu", "auto", "cuda"))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    p.add_argument(
        "--smoke", action="store_true", help="Tiny: one type, n_rare 5, at most 2 seeds."
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.n_rare, args.guidance_grid, args.n_steps = [5], [1.0, 2.0], 2
        args.seeds = min(args.seeds, 2)
        args.sed_epochs, args.sed_diffusion_epochs, args.scvi_epochs = 1, 1, 1
    return args


def load_sets(args: argparse.Namespace) -> dict[str, tuple[ad.AnnData, str, list[str]]]:
    """``{name: (adata, labels_key, rare types)}``; unknown ``--types`` raise."""
    sets = {}
    if not args.no_pbmc:
        sets["pbmc68k"] = (sc_sed.datasets.pbmc68k_counts(), "bulk_labels")
    if args.bladder is not None:
        sets["bladder"] = (read_bladder(args.bladder), "cluster")
    if args.smoke:
        a, key = sets["pbmc68k"]
        rows = np.random.default_rng(0).choice(a.n_obs, 300, replace=False)
        return {"pbmc68k": (a[np.sort(rows)].copy(), key, [SMOKE_TYPE[1]])}
    out = {}
    for name, (a, key) in sets.items():
        present = set(a.obs[key].astype(str))
        types = [t for t in args.types if t in present] if args.types else list(TYPES[name])
        out[name] = (a, key, types)
    missing = set(args.types or ()) - {t for *_, types in out.values() for t in types}
    if missing:
        msg = f"--types {sorted(missing)} are in none of the sets {list(out)}; check the names."
        raise SystemExit(msg)
    return out


def split(labels: pd.Series, args, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded (pool, validation, test) row positions."""
    rest, test = stratified_split(labels, args.test_fraction, seed)
    share = args.val_fraction / (1 - args.test_fraction)
    pool, val = stratified_split(labels.iloc[rest], share, seed + 10_000)
    return rest[pool], rest[val], test


def make_cut(a, key: str, pool: np.ndarray, rare: str, n_rare: int, seed: int, args):
    """The cut training set, or None when the pool has fewer than ``n_rare`` rare cells."""
    labels = a.obs[key].astype(str).to_numpy()
    rare_pool = pool[labels[pool] == rare]
    if rare_pool.size < n_rare:
        return None
    kept = np.random.default_rng(seed).choice(rare_pool, n_rare, replace=False)
    train = a[np.sort(np.concatenate([pool[labels[pool] != rare], kept]))].copy()
    sizes = train.obs[key].astype(str).value_counts().drop(rare)
    n_synth = args.n_synth or max(int(np.median(sizes)) - n_rare, n_rare)
    return arms.Cut(train, key, rare, n_synth, seed)


def generate_arms(cut: arms.Cut, val, args) -> tuple[dict, dict[str, Any]]:
    """``{arm: (log-normalised rows, counts or None, seconds)}`` and notes (chosen guidance)."""
    out, notes = {}, {}
    start = time.perf_counter()
    for arm in args.arms:
        t0 = time.perf_counter()
        if arm == "real":
            out[arm] = (None, cut.train.layers[arms.LAYER][cut.rare_rows], 0.0)
        elif arm == "duplicates":
            out[arm] = _with_lognorm(arms.duplicates(cut), t0)
        elif arm == "smote":
            out[arm] = (arms.smote_rows(cut), None, time.perf_counter() - t0)
        elif arm == "scvi":
            out[arm] = _with_lognorm(arms.scvi_rows(cut, args), t0)
    sed_arms = [a for a in args.arms if a.startswith("sed")]
    if sed_arms:
        t0 = time.perf_counter()
        model = arms.train_sed(cut, args)
        notes["sed_train_seconds"] = time.perf_counter() - t0
        if "sed" in sed_arms:
            t0 = time.perf_counter()
            out["sed"] = _with_lognorm(arms.sed_label_rows(model, cut, 1.0, args), t0)
        if "sed_guided" in sed_arms:
            out["sed_guided"], notes["guidance"] = _best_guidance(model, cut, val, args)
        if "sed_like" in sed_arms:
            t0 = time.perf_counter()
            out["sed_like"] = _with_lognorm(arms.sed_like_rows(model, cut, args), t0)
    notes["arms_seconds"] = time.perf_counter() - start
    return out, notes


def _with_lognorm(counts: sp.csr_matrix, t0: float) -> tuple[np.ndarray, sp.csr_matrix, float]:
    return lognorm(counts), counts, time.perf_counter() - t0


def _best_guidance(model, cut: arms.Cut, val, args) -> tuple[tuple, dict[str, float]]:
    """The grid's guidance with the best logistic-regression rare F1 on the validation cells."""
    base_x, base_y = lognorm(cut.train.layers[arms.LAYER]), cut.train.obs[cut.labels_key]
    val_x, val_y = lognorm(val.layers[arms.LAYER]), val.obs[cut.labels_key].astype(str).to_numpy()
    best, val_f1 = None, {}
    for g in args.guidance_grid:
        t0 = time.perf_counter()
        rows = _with_lognorm(arms.sed_label_rows(model, cut, g, args), t0)
        x, y = _augmented(base_x, base_y, rows[0], cut.rare)
        val_f1[str(g)] = classify(x, y, val_x, val_y, cut.rare, cut.seed)["logreg"]["rare_f1"]
        if best is None or val_f1[str(g)] > val_f1[str(best[0])]:
            best = (g, rows)
    return best[1], {"chosen": best[0], "validation_rare_f1": val_f1}


def _augmented(base_x, base_y, synth_x, rare: str) -> tuple[np.ndarray, np.ndarray]:
    y = base_y.astype(str).to_numpy()
    if synth_x is None:
        return base_x, y
    return np.vstack([base_x, synth_x]), np.concatenate([y, np.full(len(synth_x), rare)])


def score_cut(cut, synth: dict, test, reference, args) -> tuple[list[dict], dict]:
    """Classifier records per arm and the synthetic cells' fidelity per arm."""
    key, rare, seed = cut.labels_key, cut.rare, cut.seed
    base_x = lognorm(cut.train.layers[arms.LAYER])
    test_x = lognorm(test.layers[arms.LAYER])
    test_y = test.obs[key].astype(str).to_numpy()
    records, fidelity = [], {}
    for arm, (synth_x, counts, seconds) in synth.items():
        x, y = _augmented(base_x, cut.train.obs[key], synth_x, rare)
        for clf, metrics in classify(x, y, test_x, test_y, rare, seed).items():
            records.append({"arm": arm, "classifier": clf, **metrics, "seconds": seconds})
        fid = {} if counts is None else marker_rows(test, _synth_set(cut, counts), key, rare, seed)
        rows = base_x[cut.rare_rows] if synth_x is None else synth_x
        fid["ref_accuracy"] = float((reference.predict(rows) == rare).mean())
        fidelity[arm] = fid
    called = reference.predict(test_x[test_y == rare]) == rare
    fidelity["ref_accuracy_test"] = float(called.mean())
    return records, fidelity


def _synth_set(cut: arms.Cut, counts: sp.csr_matrix) -> ad.AnnData:
    """Synthetic rare cells plus the real training cells of the other types (the "rest")."""
    key = cut.labels_key
    others = cut.train[cut.train.obs[key].astype(str).to_numpy() != cut.rare]
    x = sp.vstack([sp.csr_matrix(others.layers[arms.LAYER]), counts]).tocsr()
    labels = np.concatenate(
        [others.obs[key].astype(str).to_numpy(), np.full(counts.shape[0], cut.rare)]
    )
    obs = pd.DataFrame({key: pd.Categorical(labels)}, index=[f"c{i}" for i in range(x.shape[0])])
    return ad.AnnData(x, obs=obs, var=cut.train.var[[]], layers={arms.LAYER: x})


class Reference:
    """Logistic regression on 30 PCs of the whole (uncut) real training pool."""

    def __init__(self, pool, key: str, seed: int):
        x = lognorm(pool.layers[arms.LAYER])
        self.space = Space(x, seed)
        labels = pool.obs[key].astype(str).to_numpy()
        self.clf = LogisticRegression(max_iter=2000, random_state=seed)
        self.clf.fit(self.space.project(x), labels)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels of log-normalised rows."""
        return self.clf.predict(self.space.project(x))


def run_set(
    name: str, a, key: str, types: list[str], args, done: Callable[[list, list, list], None]
) -> tuple[list, list, list]:
    """Every (type, n_rare, seed) of one set: per-seed records, fidelity rows, skipped cases.

    ``done(records, fidelity, skipped)`` is called after each cut with this set's results so far.
    """
    records, fidelity, skipped = [], [], []
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        pool, val_rows, test_rows = split(a.obs[key], args, seed)
        val, test = a[val_rows].copy(), a[test_rows].copy()
        reference = Reference(a[pool], key, seed)
        for rare in types:
            for n_rare in args.n_rare:
                case = {"set": name, "type": rare, "n_rare": n_rare}
                cut = make_cut(a, key, pool, rare, n_rare, seed, args)
                if cut is None:
                    skipped.append({**case, "seed": seed, "reason": "pool has fewer cells"})
                    continue
                print(f"{name} | {rare} | n_rare={n_rare} | seed {seed}", flush=True)
                t0 = time.perf_counter()
                synth, notes = generate_arms(cut, val, args)
                recs, fid = score_cut(cut, synth, test, reference, args)
                notes["cut_seconds"] = time.perf_counter() - t0
                seconds = f"{notes['cut_seconds']:.0f} s, arms {notes['arms_seconds']:.0f} s"
                print(f"  {seconds}", flush=True)
                info = {**case, "seed": seed, "n_synth": cut.n_synth}
                records += [{**info, **r} for r in recs]
                fidelity.append({**info, **notes, "fidelity": fid})
                done(records, fidelity, skipped)
    return records, fidelity, skipped


def fidelity_means(fidelity: list[dict]) -> list[dict]:
    """Fidelity per (set, type, n_rare, arm), averaged over seeds (None where undefined)."""
    rows = []
    for f in fidelity:
        case = {k: f[k] for k in ("set", "type", "n_rare")}
        for arm, vals in f["fidelity"].items():
            if isinstance(vals, dict):
                rows += [{**case, "arm": arm, "metric": k, "value": v} for k, v in vals.items()]
            else:
                row = {"arm": "real test cells", "metric": "ref_accuracy", "value": vals}
                rows.append({**case, **row})
    if not rows:
        return []
    df = pd.DataFrame(rows).astype({"value": float})
    means = df.groupby(["set", "type", "n_rare", "arm", "metric"], sort=False)["value"].mean()
    wide = means.unstack("metric").reset_index()
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in wide.to_dict("records")]


def tables(summary: list[dict], fid: list[dict]) -> dict[str, pd.DataFrame]:
    """One readable table per (set, type, n_rare): rare F1 and its paired CIs, fidelity."""
    out = {}
    fid_df = pd.DataFrame(fid)
    for case, block in pd.DataFrame(summary).groupby(["set", "type", "n_rare"], sort=False):
        cols = {}
        for r in block.itertuples():
            row = cols.setdefault(r.arm, {})
            row[f"{r.classifier} F1"] = r.rare_f1
            for base in BASELINES:
                ci = getattr(r, f"vs_{base}", None)
                if isinstance(ci, dict):
                    row[f"{r.classifier} dF1 vs {base}"] = _ci_text(ci["rare_f1"])
            row[f"{r.classifier} macro"] = r.macro_f1
        table = pd.DataFrame(cols).T
        same = (fid_df[["set", "type", "n_rare"]] == list(case)).all(axis=1)
        extra = fid_df[same].set_index("arm").drop(columns=["set", "type", "n_rare"])
        table = table.join(extra, how="outer")
        order = [a for a in (*ARMS, "real test cells") if a in table.index]
        out[" | ".join(map(str, case))] = table.loc[order]
    return out


def _ci_text(ci: dict) -> str:
    if ci["mean"] is None:
        return "-"
    if ci["ci_low"] is None:
        return f"{ci['mean']:+.3f}"
    return f"{ci['mean']:+.3f} [{ci['ci_low']:+.3f}, {ci['ci_high']:+.3f}]"


def write_results(
    records: list, fidelity: list, skipped: list, args, seconds: float, complete: bool
) -> dict[str, Any]:
    """Summarise the cuts run so far; write ``augmentation.json`` and ``augmentation.md``.

    Called after every cut (``complete=False``), so a run stopped early leaves the summary
    of its finished cuts; the last call (``complete=True``) also prints the tables.
    """
    summary = summarise(pd.DataFrame(records), BASELINES) if records else []
    fid = fidelity_means(fidelity)
    md = []
    for case, table in tables(summary, fid).items():
        text = table.to_string(float_format=lambda v: f"{v:.3f}")
        if complete:
            print(f"\n== {case} ==\n{text}")
        md.append(f"## {case}\n\n```\n{text}\n```\n")
    result = {
        "protocol": "cscGAN-style augmentation of a cut rare type (benchmarks/augmentation.py)",
        "complete": complete, "arms": list(args.arms), "classifiers": list(CLASSIFIERS),
        "summary": summary, "fidelity": fid, "records": records, "per_cut": fidelity,
        "skipped": skipped,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": seconds, "environment": environment(resolve_device(args.device)),
    }  # fmt: skip
    out = Path(args.out)
    write_json(out / "augmentation.json", result)
    status = "" if complete else "**Incomplete run**: the cuts finished so far.\n\n"
    (out / "augmentation.md").write_text("# Rare-type augmentation\n\n" + status + "\n".join(md))
    return result


#: Settings that may differ between runs that ``--merge`` combines (the rest must agree):
#: runs may cover other seeds, rare types and ``n_rare`` (cuts are told apart by all three).
MERGE_FREE = ("out", "seeds", "seed_start", "merge", "threads", "device", "types", "n_rare")


def merge(paths: Sequence[Path], args: argparse.Namespace) -> dict[str, Any]:
    """Summarise the finished cuts of several runs (e.g. seeds run on other machines).

    The runs must agree on every setting but those in :data:`MERGE_FREE`, and no
    (set, type, ``n_rare``, seed) cut may appear twice. Incomplete runs contribute the cuts
    they finished; the merged summary is complete when every run is.
    """
    runs, first, seen = read_mergeable(
        paths,
        MERGE_FREE,
        lambda run: [(c["set"], c["type"], c["n_rare"], c["seed"]) for c in run["per_cut"]],
        "cut",
    )
    merged = argparse.Namespace(**{**first, **{k: getattr(args, k) for k in MERGE_FREE}})
    merged.merge = [str(p) for p in paths]
    merged.seeds = sorted({key[3] for key in seen})
    merged.n_rare = sorted({key[2] for key in seen})
    merged.types = sorted({key[1] for key in seen})
    return write_results(
        [r for run in runs for r in run["records"]],
        [c for run in runs for c in run["per_cut"]],
        [s for run in runs for s in run["skipped"]],
        merged,
        sum(run["seconds"] for run in runs),
        complete=all(run.get("complete", True) for run in runs),
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the protocol, print a table per case, write ``augmentation.json`` and ``.md``.

    Both files are rewritten after every cut, marked incomplete until the run ends. With
    ``--merge`` nothing is run: the given runs' cuts are summarised together.
    """
    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, args)
    quiet("sc_sed")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    records, fidelity, skipped = [], [], []

    def done(r: list, f: list, s: list) -> None:
        elapsed = time.perf_counter() - start
        write_results(records + r, fidelity + f, skipped + s, args, elapsed, complete=False)

    try:
        for name, (a, key, types) in load_sets(args).items():
            r, f, s = run_set(name, a, key, types, args, done)
            records, fidelity, skipped = records + r, fidelity + f, skipped + s
    finally:
        torch.set_num_threads(threads)
    elapsed = time.perf_counter() - start
    return write_results(records, fidelity, skipped, args, elapsed, complete=True)


if __name__ == "__main__":
    main()
