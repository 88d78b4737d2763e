"""SED on real recommender tables, judged by recommender measures against real-vs-real floors.

Tables (read from the paths given; nothing is downloaded): ``--movielens PATH`` (MovieLens
``ratings.csv``, ml-100k's ``u.data`` or ml-1m's ``ratings.dat``; detected), ``--lastfm PATH``
(hetrec2011 Last.fm ``user_artists.dat``, play counts) and ``--table PATH --user-col U
--item-col I [--value-col V]`` for any other CSV/TSV with a header. ``--smoke`` uses the
package's bundled ``sc_sed.datasets.synthetic_interactions`` ratings with a tiny model.

Protocol, per seed (``--seeds``, default 3; seed ``s`` seeds the split, training,
generation and scoring):

1. users are split at random into training users (80%) and held-out real users (20%);
2. SED is trained on the training users with the recipe a user would run
   (``SEDModel.setup_anndata(adata)``, ``SEDModel(adata)``, ``model.train()``: no per-table
   tuning; ``--ae-epochs``/``--diffusion-epochs`` override the budgets for quick runs and are
   recorded) and generates as many users as were held out;
3. optionally (``--baselines``) "independent items": each user takes a training user's number
   of interactions, items drawn from training popularity, each value from the item's training
   values;
4. "real (train)": as many training users as were held out, drawn at random, scored as if
   they were synthetic. It is the floor of the ``tl.evaluate`` measures (same sizes);
5. every method is scored against the held-out users by ``sc_sed.tl.evaluate`` (SCC of
   per-item means, MMD and classifier AUROC in a PCA space, zero fraction, spurious items,
   memorisation) and ``sc_sed.tl.interaction_metrics`` (item popularity, user activity,
   values, co-occurring pairs, train-on-synthetic recall@20/NDCG@20), the latter with its
   split-half reference from two halves of the held-out users.

Targets (issue "recommender tables"): SCC within 0.03 of its floor, MMD at most twice its floor,
AUROC at most 0.60, train-on-synthetic recall@20 ratio at least 0.9; each reported as met or
not met per seed and for the mean. Mean and 95% t-interval over seeds per metric. Output:
``--out/recsys_<table>.json`` and ``.md`` (commit, device, threads, budgets, seconds per stage).
Run ``python benchmarks/recsys.py --help``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, resolve_device, t_interval, write_json  # noqa: E402
from _recsys_data import (  # noqa: E402
    independent_items,
    read_lastfm,
    read_movielens,
    read_table,
    split_users,
)
from quality import code_state  # noqa: E402

import sc_sed  # noqa: E402

SUMMARIES = Path(__file__).resolve().parent / "summaries"
HELDOUT = 0.2
EVALUATE = (
    "scc",
    "mmd",
    "discriminability_auroc",
    "zero_fraction_real",
    "zero_fraction_synth",
    "nnz_per_row_wasserstein",
    "n_spurious_features",
    "memorisation_ratio",
)
INTERACTIONS = (
    "item_popularity_spearman",
    "item_popularity_gini_diff",
    "user_activity_wasserstein",
    "log_value_ks",
    "top_pairs_overlap",
    "tstr_recall",
    "tstr_ndcg",
    "tstr_recall_ratio",
    "tstr_ndcg_ratio",
)
#: Tiny sizes for ``--smoke`` (a check that the script runs, not a measurement).
SMOKE_SED = {"n_hidden": 16, "n_latent": 4, "denoiser_widths": (16, 8)}
SED, INDEPENDENT, REAL = "SED", "independent items", "real (train)"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--movielens", type=Path, help="MovieLens ratings.csv, u.data or ratings.dat.")
    src.add_argument("--lastfm", type=Path, help="hetrec2011 Last.fm user_artists.dat.")
    src.add_argument("--table", type=Path, help="Any CSV/TSV with a header (see --user-col).")
    src.add_argument("--smoke", action="store_true", help="Bundled table, tiny model, 1 epoch.")
    p.add_argument("--user-col", help="--table: column of user ids.")
    p.add_argument("--item-col", help="--table: column of item ids.")
    p.add_argument("--value-col", help="--table: column of values (default: implicit 1s).")
    p.add_argument("--name", help="Table name in the output files (default: from the source).")
    p.add_argument("--seeds", type=int, default=3, help="Repeats of the whole protocol.")
    p.add_argument("--baselines", action="store_true", help="Add the independent-items baseline.")
    p.add_argument("--ae-epochs", type=int, help="Override the recipe's autoencoder epochs.")
    p.add_argument("--diffusion-epochs", type=int, help="Override the recipe's diffusion epochs.")
    p.add_argument("--n-steps", type=int, help="DDIM steps of generate (default: its default).")
    p.add_argument("--device", default="cpu", choices=("cpu", "auto"), help="Accelerator.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    p.add_argument("--progress", action="store_true", help="Show the training progress bars.")
    p.add_argument("--out", type=Path, default=SUMMARIES, help="Folder of the summaries.")
    args = p.parse_args(argv)
    if args.table is not None and not (args.user_col and args.item_col):
        p.error("--table needs --user-col and --item-col.")
    if args.seeds < 1:
        p.error("--seeds must be at least 1.")
    return args


def _quiet() -> dict[str, int]:
    """Silence library chatter; return the log levels to restore afterwards."""
    warnings.filterwarnings("ignore")
    known = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("lightning", "scvi")]
    names = ("lightning", "lightning.pytorch", "scvi", "sc_sed", "sc_sed.tl", *known)
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    return levels


def load(args: argparse.Namespace) -> tuple[Any, str, str]:
    """The users x items table, its name and the file it came from (name only)."""
    if args.smoke:
        adata = sc_sed.datasets.synthetic_interactions(n_users=120, n_items=80, implicit=False)
        return adata, args.name or "smoke", "synthetic_interactions"
    if args.movielens is not None:
        return read_movielens(args.movielens), args.name or "movielens", args.movielens.name
    if args.lastfm is not None:
        return read_lastfm(args.lastfm), args.name or "lastfm", args.lastfm.name
    adata = read_table(
        args.table, user_col=args.user_col, item_col=args.item_col, value_col=args.value_col
    )
    return adata, args.name or args.table.stem, args.table.name


def describe(adata) -> dict[str, Any]:
    """Size, sparsity and values of a table."""
    X = adata.X
    nnz_row = X.getnnz(axis=1)
    return {
        "n_users": int(adata.n_obs),
        "n_items": int(adata.n_vars),
        "n_interactions": int(X.nnz),
        "zero_fraction": 1 - X.nnz / (adata.n_obs * adata.n_vars),
        "interactions_per_user": {"median": float(np.median(nnz_row)), "max": int(nnz_row.max())},
        "values": {
            "min": float(X.data.min()),
            "max": float(X.data.max()),
            "n_distinct": int(np.unique(X.data).size),
            "integer": bool(np.all(X.data == np.round(X.data))),
        },
    }


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _time_stages(model, seconds: dict[str, float]) -> None:
    """Record the seconds of each stage that ``model.train()`` runs (the recipe is unchanged)."""
    for stage in ("train_autoencoder", "train_diffusion"):
        method = getattr(model, stage)

        def wrapper(*a, _method=method, _stage=stage, **kw):
            print(f"  {_stage} ...", flush=True)
            out, seconds[_stage] = _timed(lambda: _method(*a, **kw))
            print(f"  {_stage}: {seconds[_stage]:.0f} s", flush=True)
            return out

        setattr(model, stage, wrapper)


def run_sed(train, n_users: int, seed: int, args: argparse.Namespace) -> tuple[Any, dict]:
    """Train SED with its recipe on ``train``; generate ``n_users`` users."""
    sc_sed.SEDModel.setup_anndata(train)
    preset = "cpu" if args.device == "cpu" else "auto"
    model = sc_sed.SEDModel(train, preset=preset, **(SMOKE_SED if args.smoke else {}))
    seconds: dict[str, float] = {}
    _time_stages(model, seconds)
    epochs = (1, 1) if args.smoke else (args.ae_epochs, args.diffusion_epochs)
    model.train(
        *epochs, accelerator=args.device, seed=seed,
        enable_progress_bar=args.progress,
    )  # fmt: skip
    n_steps = 2 if args.smoke else args.n_steps
    gen_kw = {} if n_steps is None else {"n_steps": n_steps}
    print("  generate ...", flush=True)
    synth, seconds["generate"] = _timed(
        lambda: model.generate(n_users, seed=seed, enable_progress_bar=False, **gen_kw)
    )
    info = {
        "value_likelihood_": model.value_likelihood_,
        "index_head_": model.index_head_,
        "max_nonzero_": model.max_nonzero_,
        "recipe_": model.recipe_,
        "seconds": seconds,
    }
    return synth, info


def score(heldout, synth, train, seed: int) -> dict[str, dict[str, float | None]]:
    """``{metric: {"value", "reference"}}``: tl.evaluate (no reference) and interaction_metrics."""
    df = sc_sed.tl.evaluate(
        heldout, synth, train=train, metrics=list(EVALUATE), markers=False, seed=seed
    )
    overall = df[df["group"] == "all"].set_index("metric")["value"]
    out = {m: {"value": float(overall[m]), "reference": None} for m in EVALUATE if m in overall}
    im = sc_sed.tl.interaction_metrics(heldout, synth, seed=seed).set_index("metric")
    for m in INTERACTIONS:
        out[m] = {"value": float(im.loc[m, "value"]), "reference": float(im.loc[m, "split_half"])}
    return out


def targets(sed: dict, real: dict) -> dict[str, dict[str, Any]]:
    """The four targets: value, threshold and whether it is met (None when undefined)."""
    floor = {m: real[m]["value"] for m in ("scc", "mmd")}
    rows = {
        "scc": (sed["scc"]["value"], floor["scc"] - 0.03, ">="),
        "mmd": (sed["mmd"]["value"], 2 * floor["mmd"], "<="),
        "discriminability_auroc": (sed["discriminability_auroc"]["value"], 0.60, "<="),
        "tstr_recall_ratio": (sed["tstr_recall_ratio"]["value"], 0.9, ">="),
    }
    out = {}
    for metric, (value, threshold, op) in rows.items():
        ok = None
        if value is not None and math.isfinite(value) and math.isfinite(threshold):
            ok = value >= threshold if op == ">=" else value <= threshold
        out[metric] = {"value": value, "threshold": threshold, "op": op, "met": ok}
    return out


def run_seed(adata, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The whole protocol once: split, train, generate, score every method."""
    train_idx, held_idx = split_users(adata.n_obs, HELDOUT, seed)
    train, heldout = adata[train_idx].copy(), adata[held_idx].copy()
    n = heldout.n_obs
    print(f"seed {seed}: {train.n_obs} training users, {n} held out", flush=True)
    synth, sed_info = run_sed(train, n, seed, args)
    sets = {SED: synth}
    if args.baselines:
        sets[INDEPENDENT] = independent_items(train, n, seed)
    draw = np.random.default_rng(seed).choice(train.n_obs, size=min(n, train.n_obs), replace=False)
    sets[REAL] = train[np.sort(draw)].copy()
    metrics, eval_seconds = {}, {}
    for name, users in sets.items():
        print(f"  scoring {name} ...", flush=True)
        metrics[name], eval_seconds[name] = _timed(lambda u=users: score(heldout, u, train, seed))
    sed_info["seconds"]["evaluate"] = eval_seconds
    record = {"seed": seed, "n_train": int(train.n_obs), "n_heldout": int(n), "sed": sed_info}
    record |= {"metrics": metrics, "targets": targets(metrics[SED], metrics[REAL])}
    return record


def summarise(records: list[dict]) -> dict[str, Any]:
    """Per method and metric: mean and 95% CI of the value and of its reference over seeds."""
    out: dict[str, Any] = {}
    for method in records[0]["metrics"]:
        out[method] = {}
        for metric in (*EVALUATE, *INTERACTIONS):
            per_seed = [r["metrics"][method].get(metric, {}) for r in records]
            out[method][metric] = {
                "value": t_interval([m.get("value") for m in per_seed]),
                "reference": t_interval([m.get("reference") for m in per_seed]),
            }
    return out


def mean_targets(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The targets on the means over seeds."""
    def means(method):
        return {m: {"value": v["value"]["mean"]} for m, v in summary[method].items()}

    return targets(means(SED), means(REAL))


def _fmt(ci: dict) -> str:
    if ci["mean"] is None:
        return "-"
    if ci["ci_low"] is None:
        return f"{ci['mean']:.3f}"
    return f"{ci['mean']:.3f} ± {ci['mean'] - ci['ci_low']:.3f}"


def plain(value: Any) -> Any:
    """JSON values: NaN and inf become None, NumPy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def markdown(result: dict[str, Any]) -> str:
    """The summary table, the targets and the times as markdown."""
    methods = list(result["summary"])
    data = result["dataset"]
    lines = [
        f"# SED on {result['table']} ({data['source']})",
        "",
        f"{data['n_users']} users x {data['n_items']} items, {data['n_interactions']} "
        f"interactions; seeds {result['settings']['seeds']}; commit "
        f"{result['code']['git_commit']}; device {result['environment']['device']}, "
        f"{result['settings']['threads']} thread(s); value likelihood "
        f"{result['records'][0]['sed']['value_likelihood_']}.",
        "",
        "| metric | " + " | ".join(methods) + " | split-half (real) |",
        "|---|" + "---|" * (len(methods) + 1),
    ]
    for metric in (*EVALUATE, *INTERACTIONS):
        cells = [_fmt(result["summary"][m][metric]["value"]) for m in methods]
        ref = _fmt(result["summary"][SED][metric]["reference"])
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {ref} |")
    lines += ["", "| target (means over seeds) | SED | threshold | met |", "|---|---|---|---|"]
    for metric, t in result["targets_mean"].items():
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"| {metric} | {value} | {t['op']} {t['threshold']:.3f} | {t['met']} |")
    lines += ["", "Seconds per seed (autoencoder, diffusion, generation):"]
    for r in result["records"]:
        s = r["sed"]["seconds"]
        lines.append(
            f"- seed {r['seed']}: {s.get('train_autoencoder', 0):.0f}, "
            f"{s.get('train_diffusion', 0):.0f}, {s.get('generate', 0):.0f}"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the protocol for every seed; print and write ``recsys_<table>.json`` and ``.md``."""
    args = parse_args(argv)
    code = code_state()  # the code the run starts from (others may commit meanwhile)
    levels = _quiet()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        adata, name, source = load(args)
        start = time.perf_counter()
        records = [run_seed(adata, seed, args) for seed in range(args.seeds)]
        total = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
        for logger_name, level in levels.items():
            logging.getLogger(logger_name).setLevel(level)
    summary = summarise(records)
    result = {
        "table": name,
        "dataset": {"source": source, **describe(adata)},
        "settings": {
            "seeds": args.seeds, "heldout": HELDOUT, "device": args.device,
            "threads": args.threads, "smoke": args.smoke, "baselines": args.baselines,
            "ae_epochs": args.ae_epochs, "diffusion_epochs": args.diffusion_epochs,
            "n_steps": args.n_steps, "recipe": "defaults" if not (
                args.ae_epochs or args.diffusion_epochs or args.smoke) else "overridden",
        },
        "total_seconds": total,
        "summary": summary,
        "targets_mean": mean_targets(summary),
        "records": records,
        "code": code,
        "environment": environment(resolve_device(args.device)),
    }  # fmt: skip
    result = plain(result)
    md = markdown(result)
    print(md)
    write_json(args.out / f"recsys_{name}.json", result)
    (args.out / f"recsys_{name}.md").write_text(md)
    return result


if __name__ == "__main__":
    main()
