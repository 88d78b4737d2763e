"""Fidelity report: where generated cells differ from real ones, and why.

SED and the baselines (thresholded dense DDPM, scVI from its prior) are trained on one split
(``--heldout-fraction`` of each label held out, seeded) exactly as in ``quality.py``, and
their generated cells are compared with the held-out cells on: library size and detected
genes per cell (Wasserstein distances, plotted), per-gene mean and detection-rate agreement,
gene–gene correlation agreement on the top variable genes, ``sc_sed.tl.evaluate``'s scores
(overall and per-label AUROC). A real-vs-real reference (training cells with the held-out
label mix) gives the floor of every number. For SED it adds what the latent carries
(own versus same-label latent), whether the decoder uses it (diffusion versus shuffled or
constant latents) and exposure bias (teacher-forced versus free-running decoder statistics);
see ``_fidelity_sed.py``.

Figures and the full JSON go to ``--out`` (default ``benchmarks/results/fidelity/<dataset>``,
git-ignored); a compact summary (JSON and markdown, with commit, device and budget) goes to
``benchmarks/summaries/<dataset>[_<tag>]`` (``--summary-dir``).

Run ``python benchmarks/fidelity.py --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fidelity_sed as S  # noqa: E402
import _fidelity_stats as F  # noqa: E402
import quality as Q  # noqa: E402
from _common import environment, resolve_device, write_json  # noqa: E402

import sc_sed  # noqa: E402

METHODS = ("sed", "thresholded", "scvi")
SCORES = (
    "zero_fraction_real",
    "zero_fraction_synth",
    "scc",
    "mmd",
    "discriminability_auroc",
    "label_accuracy",
    "detection_rate_pearson",
    "nnz_per_row_wasserstein",
    "n_spurious_features",
    "memorisation_ratio",
)
USAGE_SCORES = ["zero_fraction_synth", "scc", "mmd", "discriminability_auroc"]
SUMMARY_DIR = Path(__file__).resolve().parent / "summaries"


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Options: quality.py's data and budget flags plus the fidelity-specific ones."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    Q._add_data_args(p)
    Q._add_budget_args(p)
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--n-hvg", type=int, default=200, help="top variable genes for correlations")
    p.add_argument(
        "--n-diagnostic-cells", type=int, default=128, help="cells of each SED latent measurement"
    )
    p.add_argument(
        "--train-cells", type=int, help="train on at most this many training cells (stratified)"
    )
    p.add_argument(
        "--sed-kwargs",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="more SEDModel arguments for A/B runs, e.g. token_dropout=0.1 n_memory=8",
    )
    p.add_argument("--load-sed", type=Path, help="use this saved SEDModel instead of training")
    p.add_argument("--save-sed", type=Path, help="save the trained SEDModel to this folder")
    p.add_argument(
        "--autoencoder-only",
        action="store_true",
        help="A/B mode: train only SED's autoencoder (--sed-epochs) and measure it on held-out "
        "cells (teacher-forced NLL, reconstructions, latent carry, exposure bias); no baselines",
    )
    p.add_argument("--gen-batch-size", type=int, default=128)
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (default 1 on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--sed-seed",
        type=int,
        help="seed of SED's initialisation and training only (default --seed): replicate "
        "runs on one split and one generation seed measure SED's run-to-run noise",
    )
    p.add_argument("--out", type=Path, help="figures and full JSON folder")
    p.add_argument("--summary-dir", type=Path, help=f"summary folder (default {SUMMARY_DIR})")
    p.add_argument("--tag", help="suffix of the summary files (A/B runs)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--progress", action="store_true")
    return p.parse_args(argv)


def parse_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b=0.5", "c=x"]`` → ``{"a": 1, "b": 0.5, "c": "x"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            msg = f"--sed-kwargs {item!r} is not KEY=VALUE"
            raise SystemExit(msg)
        for cast in (int, float):
            try:
                out[key] = cast(raw)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(raw.lower(), raw)
    return out


# -- running --------------------------------------------------------------------------------


def subset_train(train, labels_key: str, n: int | None, seed: int):
    """At most ``n`` training cells, keeping the label proportions."""
    if n is None or n >= train.n_obs:
        return train
    counts = train.obs[labels_key].value_counts()
    want = {k: max(1, round(n * v / train.n_obs)) for k, v in counts.items()}
    return train[F.stratified_subset(train.obs[labels_key].to_numpy(), want, seed)].copy()


def train_autoencoder(ctx: Q.RunContext) -> tuple[sc_sed.SEDModel, float]:
    """SED's autoencoder stage only (``--autoencoder-only``)."""
    model, b = Q.build_sed(ctx), ctx.budget
    _, seconds = Q.timed(
        lambda: model.train_autoencoder(
            b.sed_epochs,
            accelerator=ctx.accelerator,
            enable_progress_bar=ctx.progress,
            **Q.sed_batch_kwargs(b),
        )
    )
    return model, seconds


def run_all(
    ctx: Q.RunContext, methods: Sequence[str], load_sed: Path | None, save_sed: Path | None = None
) -> dict:
    """Train (or load) the methods and generate the held-out label mix with each."""
    runs = {}
    if "sed" in methods:
        print("SED ...", flush=True)
        if load_sed is not None:
            model = sc_sed.SEDModel.load(str(load_sed), adata=_registered_train(ctx))
            runs["sed"] = Q.sed_samples(ctx, model, float("nan"))
        else:
            runs["sed"] = Q.run_sed(ctx)
        if save_sed is not None:
            runs["sed"].model.save(str(save_sed), overwrite=True)
    runs.update(Q.run_methods(ctx, [m for m in methods if m != "sed"]))
    return runs


def _registered_train(ctx: Q.RunContext):
    train = ctx.train.copy()
    sc_sed.SEDModel.setup_anndata(train, layer=ctx.data.layer, labels_key=ctx.data.labels_key)
    return train


def _x(adata, layer):
    return adata.X if layer is None else adata.layers[layer]


def score(heldout, synth, train, data: Q.Dataset, hvg: np.ndarray, seed: int) -> dict[str, Any]:
    """Fidelity metrics, ``evaluate`` scores and per-label AUROC of one set of cells."""
    table = Q.evaluate_run(heldout, synth, train, data, seed)
    auroc = table[(table["metric"] == "discriminability_auroc") & (table["group"] != "all")]
    out = F.fidelity_metrics(_x(heldout, data.layer), _x(synth, data.layer), hvg)
    out.update({k: v for k, v in Q.overall(table).items() if k in SCORES})
    out["auroc_per_label"] = dict(zip(auroc["group"], auroc["value"].astype(float), strict=True))
    return out


def sed_diagnostics(run: Q.MethodRun, ctx: Q.RunContext, heldout, n: int) -> dict[str, Any]:
    """What SED's latent carries, whether its decoder uses it, and its exposure bias."""
    model, data, bs = run.model, ctx.data, ctx.gen_batch_size
    out = {}
    t0 = time.perf_counter()
    out["latent_carry"] = S.latent_carry(
        model, ctx.train, data.labels_key, data.layer, n, ctx.seed, bs
    )
    held = heldout[F.stratified_subset(
        heldout.obs[data.labels_key].to_numpy(), _scaled(ctx.counts, n), ctx.seed
    )].copy()  # fmt: skip
    counts = Q.label_counts(held, data.labels_key)
    decoded, labels = S.latent_variants(
        model, held, ctx.train, counts, ctx.budget.n_steps, ctx.seed, bs
    )
    usage = {}
    for name, x in decoded.items():
        synth = _as_adata(x, held, data.layer)
        with_labels = labels[name] is not None
        if with_labels:
            synth.obs[data.labels_key] = pd.Categorical(
                labels[name], categories=held.obs[data.labels_key].astype("category").cat.categories
            )
        table = sc_sed.tl.evaluate(
            held, synth, layer=data.layer, seed=ctx.seed,
            groupby=data.labels_key if with_labels else None,
            metrics=USAGE_SCORES + (["label_accuracy"] if with_labels else []),
        )  # fmt: skip
        usage[name] = Q.overall(table) | F.fidelity_metrics(_x(held, data.layer), x, np.arange(0))
    out["latent_usage"] = {"n_cells": held.n_obs, **usage}
    out["exposure"] = S.exposure_bias(model, heldout, data.layer, n, ctx.seed, bs)
    out["seconds"] = time.perf_counter() - t0
    return out


def autoencoder_report(ctx: Q.RunContext, heldout, n: int, hvg: np.ndarray) -> dict[str, Any]:
    """Train SED's autoencoder only and measure it on held-out cells (the A/B mode)."""
    data, bs = ctx.data, ctx.gen_batch_size
    model, seconds = train_autoencoder(ctx)
    print(f"autoencoder trained in {seconds:.0f} s; measuring ...", flush=True)
    x_train, x_held = _x(ctx.train, data.layer), _x(heldout, data.layer)
    out = {"train_seconds": seconds, "history": _last_history(model)}
    out["teacher_forced"] = S.teacher_forced_nll(model, heldout, bs)
    out["teacher_forced"]["bernoulli_index_nll_per_token"] = F.bernoulli_index_nll(x_train, x_held)
    rows = F.stratified_subset(
        heldout.obs[data.labels_key].to_numpy(), _scaled(ctx.counts, n), ctx.seed
    )
    held = heldout[rows].copy()
    z = S.encode(model, S._registered(model, held), np.arange(held.n_obs), bs)
    recon = S.decode(model, z, ctx.seed, bs)
    table = sc_sed.tl.evaluate(held, _as_adata(recon, held, data.layer), layer=data.layer,
                               seed=ctx.seed, metrics=USAGE_SCORES)  # fmt: skip
    out["reconstruction"] = Q.overall(table) | F.fidelity_metrics(_x(held, data.layer), recon, hvg)
    out["reconstruction"]["n_cells"] = held.n_obs
    out["latent_carry"] = S.latent_carry(
        model, ctx.train, data.labels_key, data.layer, n, ctx.seed, bs
    )
    out["exposure"] = S.exposure_bias(model, heldout, data.layer, n, ctx.seed, bs)
    return out


def _last_history(model) -> dict[str, float]:
    hist = model.history_ or {}
    return {k: float(v.iloc[-1, 0]) for k, v in hist.items() if len(v)}


def _scaled(counts: dict, n: int) -> dict:
    total = sum(counts.values())
    return {k: max(1, round(v * n / total)) for k, v in counts.items()}


#: Column of the reference generator without structure inside a label.
LABEL_MEAN = "Poisson (label mean)"


def label_mean_cells(train, ref, data: Q.Dataset, seed: int):
    """The ``Poisson (label mean)`` reference: ``ref``'s labels and library sizes, no more."""
    rows = train.obs_names.get_indexer(ref.obs_names)
    labels = train.obs[data.labels_key].to_numpy()
    x = F.label_mean_poisson(_x(train, data.layer), labels, rows, seed)
    cells = _as_adata(x, train[rows], data.layer)
    cells.obs_names = [f"label_mean_{i}" for i in range(cells.n_obs)]
    return cells


def _as_adata(x, like, layer):
    import anndata

    ad = anndata.AnnData(X=x.astype(np.float32), obs=like.obs.copy(), var=like.var.copy())
    if layer is not None:
        ad.layers[layer] = ad.X.copy()
    return ad


# -- report ---------------------------------------------------------------------------------

TABLE_ROWS = (
    ("zero_fraction_synth", "zero fraction"),
    ("scc", "SCC"),
    ("mmd", "MMD"),
    ("discriminability_auroc", "AUROC"),
    ("label_accuracy", "kNN label accuracy"),
    ("library_size_w1", "library size W1"),
    ("library_size_mean_synth", "library size mean"),
    ("detected_genes_w1", "detected genes W1"),
    ("detected_genes_mean_synth", "detected genes mean"),
    ("detected_genes_sd_synth", "detected genes SD"),
    ("lib_vs_detected_corr_synth", "corr(log lib, log detected)"),
    ("mean_count_per_detection_synth", "count per detection"),
    ("gene_mean_log_pearson", "gene mean (log1p) Pearson"),
    ("gene_detection_pearson", "gene detection-rate Pearson"),
    ("gene_detection_mae", "gene detection-rate MAE"),
    ("gene_corr_pearson", "gene-gene corr agreement"),
    ("pc_sd_ratio_mean", "PC 1-10 SD ratio, mean"),
    ("pc_sd_ratio_min", "PC 1-10 SD ratio, min"),
    ("off_pc_norm_ratio", "norm off PCs 1-10, ratio"),
    ("n_spurious_features", "spurious genes"),
    ("memorisation_ratio", "memorisation ratio"),
)


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.4f}" if isinstance(v, float) and abs(v) < 1 else f"{v:.3g}"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a markdown table (columns: reference and methods)."""
    cols = list(summary["methods"])
    real = summary["methods"].get("real (train)", {})
    lines = [
        f"# Fidelity: {summary['dataset']['name']}",
        "",
        f"commit `{summary['code'].get('git_commit')}` (package diff "
        f"{summary['code'].get('package_diff_sha1')}), device {summary['environment']['device']}, "
        f"budget {summary['budget']}, sed kwargs {summary['sed_kwargs']}, "
        f"sed seed {summary.get('sed_seed')}, "
        f"{summary['dataset']['n_train']} train / {summary['dataset']['n_heldout']} held-out cells",
        "",
        "| metric | real (held-out) | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    real_cols = {
        "zero_fraction_synth": "zero_fraction_real",
        "library_size_mean_synth": "library_size_mean_real",
        "detected_genes_mean_synth": "detected_genes_mean_real",
        "detected_genes_sd_synth": "detected_genes_sd_real",
        "lib_vs_detected_corr_synth": "lib_vs_detected_corr_real",
        "mean_count_per_detection_synth": "mean_count_per_detection_real",
    }
    for key, name in TABLE_ROWS:
        ref = real.get(real_cols.get(key, ""), None)
        vals = [_cell(summary["methods"][m].get(key)) for m in cols]
        lines.append(f"| {name} | {_cell(ref)} | " + " | ".join(vals) + " |")
    lines += _diagnostics_markdown(summary.get("sed_diagnostics"))
    return "\n".join(lines) + "\n"


def _diagnostics_markdown(diag: dict[str, Any] | None) -> list[str]:
    if not diag:
        return []
    c, e = diag["latent_carry"], diag["exposure"]
    lines = ["", f"SED latent carry ({c['n_cells']} training cells; Pearson of log values "
             "with the source cell):", "", "| | own latent | same-label latent | same-label real cell |",
             "|---|---|---|---|"]  # fmt: skip
    for name in ("library_size", "detected_genes"):
        lines.append(
            f"| {name.replace('_', ' ')} | {_cell(c[f'{name}_corr_own_latent'])} | "
            f"{_cell(c[f'{name}_corr_same_label_latent'])} | {_cell(c[f'{name}_corr_same_label_real'])} |"
        )
    lines.append(
        f"| expression profile | {_cell(c['profile_corr_own_latent'])} | "
        f"{_cell(c['profile_corr_same_label_latent'])} | {_cell(c['profile_corr_same_label_real'])} |"
    )
    u = diag["latent_usage"]
    names = [k for k in u if k != "n_cells"]
    lines += ["", f"SED decoded from different latents ({u['n_cells']} held-out cells as reference):",
              "", "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]  # fmt: skip
    for key in ("zero_fraction_synth", "scc", "mmd", "discriminability_auroc", "label_accuracy",
                "detected_genes_mean_synth", "detected_genes_w1", "library_size_w1"):  # fmt: skip
        lines.append(f"| {key} | " + " | ".join(_cell(u[n].get(key)) for n in names) + " |")
    lines += [
        "",
        f"SED exposure bias ({e['n_cells']} held-out cells, own latents): row length real "
        f"{e['length_real_mean']:.0f} vs free-running {e['length_free_running_mean']:.0f} "
        f"(corr {_cell(e['length_corr'])}); mean P(END) before the row's end teacher-forced "
        f"{_cell(e['p_end_before_end_teacher_forced'])} vs free-running "
        f"{_cell(e['p_end_before_end_free_running'])}; P(END) at the end "
        f"{_cell(e['p_end_at_end_teacher_forced'])} vs {_cell(e['p_end_at_end_free_running'])}; "
        f"median P(no END before the end) {_cell(e['survival_median_teacher_forced'])} vs "
        f"{_cell(e['survival_median_free_running'])}; detections the decoder's hazards expect "
        f"over those present ({e.get('n_calibration_cells')} cells): teacher-forced on real rows "
        f"{_cell(e.get('expected_over_actual_detections_teacher_forced'))}, on its own rows "
        f"{_cell(e.get('expected_over_actual_detections_free_running'))} (1 by construction).",
    ]
    return lines


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_private(v) for k, v in value.items() if not str(k).startswith("_")}
    return value


def write_summary(summary: dict[str, Any], folder: Path, tag: str | None) -> list[Path]:
    """Compact JSON (no per-cell arrays or curves) and markdown of one run."""
    name = summary["dataset"]["name"] + (f"_{tag}" if tag else "")
    compact = _strip_private(summary)
    if compact.get("sed_diagnostics"):
        compact["sed_diagnostics"]["exposure"] = {
            k: v for k, v in compact["sed_diagnostics"]["exposure"].items()
            if not k.startswith("curves") and k != "step_edges"
        }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    js = write_json(folder / f"{name}.json", Q._jsonable(compact))
    md = folder / f"{name}.md"
    md.write_text(markdown(summary))
    return [js, md]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Split, train, generate, score, diagnose, plot and summarise."""
    start = time.perf_counter()
    env = environment(resolve_device("cuda" if args.device == "gpu" else args.device))
    data = Q.load_dataset(args)
    budget = Q.resolve_budget(args, Q.budget_key(data))
    out = args.out or Path(__file__).resolve().parent / "results" / "fidelity" / data.name
    out.mkdir(parents=True, exist_ok=True)
    train, heldout = Q.split(data, args.heldout_fraction, args.seed)
    train = subset_train(train, data.labels_key, args.train_cells, args.seed)
    counts = Q.label_counts(heldout, data.labels_key)
    print(f"{data.name}: train {train.n_obs}, held-out {heldout.n_obs}; budget "
          f"{dataclasses.asdict(budget)}", flush=True)  # fmt: skip
    sed_kwargs = parse_kwargs(args.sed_kwargs)
    ctx = Q.RunContext(train, data, budget, counts, args.device, args.seed,
                       args.gen_batch_size, args.progress, sed_kwargs=sed_kwargs,
                       sed_seed=args.sed_seed)  # fmt: skip
    hvg = F.top_variable_genes(F.csr(_x(heldout, data.layer)), args.n_hvg)
    if args.autoencoder_only:
        return run_autoencoder_only(args, ctx, heldout, hvg, env, start)
    runs = run_all(ctx, args.methods, args.load_sed, args.save_sed)
    ref = train[S.train_reference(train, counts, data.labels_key, args.seed)].copy()
    print("scoring ...", flush=True)
    methods = {"real (train)": score(heldout, ref, train, data, hvg, args.seed)}
    methods["real (train)"]["memorisation_ratio"] = None  # these cells are training cells
    methods[LABEL_MEAN] = score(heldout, label_mean_cells(train, ref, data, args.seed),
                                train, data, hvg, args.seed)  # fmt: skip
    for m, r in runs.items():
        methods[m] = score(heldout, r.synth, train, data, hvg, args.seed)
        methods[m]["train_seconds"], methods[m]["generate_seconds"] = (
            r.train_seconds,
            r.generate_seconds,
        )
    diag = None
    if "sed" in runs:
        print("SED diagnostics ...", flush=True)
        diag = sed_diagnostics(runs["sed"], ctx, heldout, args.n_diagnostic_cells)
    summary = {
        "dataset": {"name": data.name, "source": data.source, "shape": list(data.adata.shape),
                    "n_train": train.n_obs, "n_heldout": heldout.n_obs},
        "code": Q.code_state(), "environment": env, "budget": dataclasses.asdict(budget),
        "sed_kwargs": sed_kwargs, "sed_seed": args.sed_seed,
        "loaded_sed": args.load_sed.name if args.load_sed else None, "methods": methods, "sed_diagnostics": diag,
    }  # fmt: skip
    if not args.no_figures:
        import _fidelity_plots as P

        summary["figures"] = P.figures(heldout, ref, runs, diag, data.layer, out)
    summary["total_seconds"] = time.perf_counter() - start
    write_json(out / "fidelity.json", Q._jsonable(summary))
    folder = args.summary_dir or (out if data.name == "smoke" else SUMMARY_DIR)
    written = write_summary(summary, folder, args.tag)
    print(markdown(summary))
    print(f"wrote {out / 'fidelity.json'}, {', '.join(map(str, written))}; "
          f"total {summary['total_seconds']:.0f} s", flush=True)  # fmt: skip
    return summary


def run_autoencoder_only(args, ctx: Q.RunContext, heldout, hvg, env, start: float) -> dict:
    """``--autoencoder-only``: measure SED's autoencoder, write the summary (tagged)."""
    report = autoencoder_report(ctx, heldout, args.n_diagnostic_cells, hvg)
    summary = {
        "dataset": {"name": ctx.data.name, "source": ctx.data.source,
                    "n_train": ctx.train.n_obs, "n_heldout": heldout.n_obs},
        "code": Q.code_state(), "environment": env, "budget": dataclasses.asdict(ctx.budget),
        "sed_kwargs": ctx.sed_kwargs, "mode": "autoencoder_only", "autoencoder": report,
        "total_seconds": time.perf_counter() - start,
    }  # fmt: skip
    out = args.out or Path(__file__).resolve().parent / "results" / "fidelity" / ctx.data.name
    out.mkdir(parents=True, exist_ok=True)
    tag = args.tag or "autoencoder"
    write_json(out / f"autoencoder_{tag}.json", Q._jsonable(summary))
    folder = args.summary_dir or (out if ctx.data.name == "smoke" else SUMMARY_DIR)
    name = f"{ctx.data.name}_{tag}.json"
    write_json(folder / name, Q._jsonable(_strip_private(_compact_exposure(summary))))
    print(json_lines(report), flush=True)
    print(f"wrote {folder / name}; total {summary['total_seconds']:.0f} s", flush=True)
    return summary


def _compact_exposure(summary: dict) -> dict:
    report = dict(summary["autoencoder"])
    report["exposure"] = {
        k: v
        for k, v in report["exposure"].items()
        if not k.startswith("curves") and k != "step_edges"
    }
    return {**summary, "autoencoder": report}


def json_lines(report: dict) -> str:
    """The autoencoder report's scalars, one ``section.key value`` per line."""
    lines = []
    for section, values in report.items():
        if isinstance(values, dict):
            lines += [f"{section}.{k} {_cell(v)}" for k, v in values.items()
                      if isinstance(v, int | float) and not str(k).startswith("_")]  # fmt: skip
        else:
            lines.append(f"{section} {_cell(values)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the report; torch's thread count is restored afterwards."""
    return Q.run_benchmark(parse_args(argv), run)


if __name__ == "__main__":
    main()
