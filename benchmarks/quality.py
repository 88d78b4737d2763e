"""Quality benchmark: SED vs dense DDPM (raw and thresholded) vs scVI's prior (DESIGN §4).

Every method is trained on the same training split of one dataset, generates as many rows
as the held-out split (with the held-out label mix), and is judged against the held-out
rows with :func:`sc_sed.tl.evaluate` (``train=`` the training split, ``groupby=`` the
labels), plus :func:`sc_sed.tl.compare_physics` for images with ``eta``/``phi`` pixel
centres. The script prints the DESIGN targets for SED as PASS/FAIL and one comparison
table, and writes ``quality.json``, ``metrics.csv`` and figures into ``--out``.

Run ``python benchmarks/quality.py --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, resolve_device, write_json  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed._demo import stratified_split  # noqa: E402

if TYPE_CHECKING:
    from anndata import AnnData

METHODS = ("sed", "dense", "thresholded", "scvi")
METHOD_NAMES = {
    "sed": "SED",
    "dense": "dense DDPM",
    "thresholded": "thresholded DDPM",
    "scvi": "scVI prior",
}
KEY_METRICS = (
    "zero_fraction_real",
    "zero_fraction_synth",
    "scc",
    "mmd",
    "energy_distance",
    "discriminability_auroc",
    "label_accuracy",
    "detection_rate_pearson",
    "nnz_per_row_wasserstein",
    "n_spurious_features",
    "memorisation_ratio",
)
PHYSICS_METRICS = ("pt_wasserstein", "mass_wasserstein", "n_hits_wasserstein")
ZERO_FRACTION_TOLERANCE = 0.02
SCC_TARGET = 0.9
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BLADDER_FILE = SHARED_DATA / "mouse_bladder_cell_select_2100.h5"


# -- budgets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Model sizes, epochs and sampling steps of one run (CLI flags override a preset)."""

    sed_epochs: int | None = 60
    sed_diffusion_epochs: int | None = 190
    sed_batch_size: int | None = 32
    sed_n_hidden: int | None = 64
    sed_n_layers: int | None = 1
    sed_n_heads: int | None = 4
    sed_n_latent: int | None = 32
    denoiser_widths: tuple[int, ...] = (512, 512, 256, 128)
    dense_epochs: int = 300
    scvi_epochs: int = 200
    n_steps: int = 50
    max_minutes: float = 15.0
    #: SED with ``SEDModel``'s own sizes, epochs and minibatch (None fields) where no flag
    #: names one: what a user gets (e.g. on a GPU)
    sed_model_defaults: bool = False


#: SED budget fields that ``--sed-model-defaults`` leaves to the model (None)
SED_MODEL_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Budget)
    if f.name.startswith("sed_") and f.name != "sed_model_defaults"
)


#: Per-dataset budgets. PBMC (the defaults) and bladder were timed on the shared 2-core CPU;
#: digits and showers are smaller problems (tens of non-zeros per row) and finish sooner.
PRESETS: dict[str, dict[str, Any]] = {
    # 8-row autoencoder batches: more optimiser steps per CPU second (see sc_sed._demo)
    "pbmc68k": {"sed_batch_size": 8},
    "h5ad": {},
    "digits": {
        "sed_epochs": 30,
        "sed_diffusion_epochs": 100,
        "dense_epochs": 100,
        "scvi_epochs": 100,
    },
    # the full 190 diffusion epochs (Budget's): 40 left the encoder components' latents
    # under-fitted (AUROC 0.70 vs 0.57; benchmarks/README.md, "Other data")
    "showers": {"sed_epochs": 60, "dense_epochs": 200},
    # 8 autoencoder epochs and the full 190 diffusion epochs (~6,000 steps): the CPU preset
    # behind the bladder figures in benchmarks/README.md; 2 heads of width 32 are cheaper
    "bladder": {
        "sed_epochs": 8,
        "sed_diffusion_epochs": 190,
        "sed_batch_size": 16,
        "sed_n_heads": 2,
        "dense_epochs": 15,
        "scvi_epochs": 30,
        "max_minutes": 45.0,
    },
    "smoke": {
        "sed_epochs": 1,
        "sed_diffusion_epochs": 1,
        "sed_batch_size": 32,
        "sed_n_hidden": 16,
        "sed_n_layers": 1,
        "sed_n_latent": 8,
        "denoiser_widths": (32, 32),
        "dense_epochs": 2,
        "scvi_epochs": 2,
        "n_steps": 4,
        "max_minutes": 1.0,
    },
}


def resolve_budget(args: argparse.Namespace, dataset: str) -> Budget:
    """Budget of ``dataset``'s preset with every flag the user gave on top."""
    values = {**dataclasses.asdict(Budget()), **PRESETS.get(dataset, {})}
    if getattr(args, "sed_model_defaults", False):
        values.update(dict.fromkeys(SED_MODEL_FIELDS), sed_model_defaults=True)
    for name in values:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = tuple(given) if name == "denoiser_widths" else given
    return Budget(**values)


# -- command line ---------------------------------------------------------------------------

EPILOG = """\
Time budget (measured on 2 CPU cores shared with other jobs, 1 torch thread; the machine's
load changes the times by up to 2x; lower the epochs to go faster):
  PBMC 68k (700 x 765, defaults): ~13 minutes in all. SED's autoencoder dominates
    (~6-11 s/epoch at width 64, 1 layer, batch 32), its latent diffusion ~2.5 s/epoch,
    the dense DDPM ~0.2 s/epoch, scVI ~0.06 s/epoch, evaluation ~10 s per method.
  Mouse bladder (2,100 x 20,670, 290-3,700 non-zeros/row): SED's autoencoder ~2 min/epoch
    at batch 16 (length-bucketed batches; ~5 min/epoch without), encoding the latents
    ~1.5 min, the dense DDPM ~7 s/epoch plus ~70 s to calibrate its threshold, scVI
    ~3 s/epoch: the preset (5 SED epochs) took 18.6 minutes. CPU budgets limit quality there.
  --smoke: tiny synthetic counts and models, about 10 seconds.
Data: PBMC 68k counts by default; --bladder [PATH]; --h5ad PATH with --layer/--labels-key
(a .h5 file is read like --bladder: h5py X counts, Y labels); --digits; --showers
(images with eta/phi: adds jet-observable distances); --smoke.
"""


def _add_data_args(p: argparse.ArgumentParser) -> None:
    data = p.add_mutually_exclusive_group()
    data.add_argument(
        "--h5ad", type=Path, help="any AnnData (.h5ad); a .h5 path is read like --bladder"
    )
    data.add_argument(
        "--bladder",
        type=Path,
        nargs="?",
        const=BLADDER_FILE,
        help=f"mouse bladder HDF5 (X counts, Y labels); default path {BLADDER_FILE}",
    )
    data.add_argument("--digits", action="store_true", help="scikit-learn digits as sparse images")
    data.add_argument(
        "--showers", action="store_true", help="synthetic calorimeter showers (eta/phi)"
    )
    data.add_argument(
        "--smoke", action="store_true", help="tiny synthetic run (seconds; for tests)"
    )
    p.add_argument("--layer", help="layer with the values for --h5ad (default: X)")
    p.add_argument("--labels-key", help="obs column of labels for --h5ad (required with it)")
    p.add_argument("--heldout-fraction", type=float, default=0.2, help="held-out share per label")
    p.add_argument(
        "--top-genes", type=int, help="keep only the N most often detected features (counts data)"
    )
    p.add_argument(
        "--thin",
        type=float,
        help="binomial thinning: keep each count with this probability (a shallower data set; "
        "seeded by --seed; rows left empty are dropped)",
    )


#: Budget flags: (field, help text); the defaults come from :class:`Budget` and the presets.
BUDGET_FLAGS = (
    ("sed_epochs", "SED autoencoder epochs"),
    ("sed_diffusion_epochs", "SED latent-diffusion epochs"),
    ("sed_batch_size", "SED autoencoder minibatch"),
    ("sed_n_hidden", "SED Transformer width (feed-forward 2x)"),
    ("sed_n_layers", "SED encoder and decoder layers"),
    ("sed_n_heads", "SED attention heads"),
    ("sed_n_latent", "SED latent size"),
    ("denoiser_widths", "MLP U-Net widths of SED's latent denoiser and of the dense DDPM"),
    ("dense_epochs", "dense DDPM epochs (raw and thresholded share the model)"),
    ("scvi_epochs", "scVI epochs"),
    ("n_steps", "DDIM sampling steps of SED and the dense DDPM"),
    ("max_minutes", "time budget in minutes; only warns when the run exceeds it"),
)


def _defaults_note(name: str) -> str:
    """``"default X; bladder Y"`` for a budget field."""
    default = getattr(Budget(), name)
    bladder = PRESETS["bladder"].get(name, default)
    show = (lambda v: " ".join(map(str, v))) if name == "denoiser_widths" else str
    note = f"default {show(default)}"
    return note if bladder == default else f"{note}; bladder {show(bladder)}"


def _add_budget_args(p: argparse.ArgumentParser) -> None:
    for name, text in BUDGET_FLAGS:
        flag = "--" + name.replace("_", "-")
        kind = float if name == "max_minutes" else int
        nargs = "+" if name == "denoiser_widths" else None
        p.add_argument(flag, type=kind, nargs=nargs, help=f"{text} ({_defaults_note(name)})")
    p.add_argument(
        "--sed-model-defaults",
        action="store_true",
        default=None,
        help="SED with SEDModel's own sizes, epochs and minibatch instead of the preset's "
        "(the --sed-* flags given still apply): the model's defaults, e.g. on a GPU",
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; budget flags left out take the dataset's preset."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_args(p)
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="methods to run (dense and thresholded share one trained DenseDDPM)",
    )
    _add_budget_args(p)
    p.add_argument("--gen-batch-size", type=int, default=256, help="rows generated together")
    p.add_argument(
        "--device", choices=["auto", "cpu", "gpu"], default="auto", help="Lightning accelerator"
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default 1 on CPU: on 2 shared cores, 2 threads are up to 10x "
        "slower when another process is busy; pass 2 on an idle machine)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split, training and sampling")
    p.add_argument(
        "--out", type=Path, help="output folder (default benchmarks/results/quality/<dataset>/)"
    )
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument(
        "--no-sed-reconstruction",
        action="store_true",
        help="skip the diagnostic that also evaluates SED's autoencoder alone (held-out rows "
        "encoded and decoded, no diffusion): it tells which stage limits SED's scores",
    )
    p.add_argument("--progress", action="store_true", help="show training/generation progress bars")
    args = p.parse_args(argv)
    if args.h5ad is not None and args.h5ad.suffix != ".h5" and args.labels_key is None:
        p.error("--h5ad needs --labels-key (an obs column of labels)")
    return args


# -- data -----------------------------------------------------------------------------------


@dataclass
class Dataset:
    """One benchmark dataset: the AnnData and where its values and labels are."""

    name: str
    adata: AnnData
    layer: str | None
    labels_key: str
    source: str

    @property
    def physics(self) -> bool:
        """Whether the features carry (η, φ) pixel centres (jet observables apply)."""
        return {"eta", "phi"} <= set(self.adata.var.columns)


def read_bladder(path: Path) -> AnnData:
    """Read an HDF5 file with ``X`` (cells × genes counts) and ``Y`` (cluster labels)."""
    import anndata
    import h5py
    import scipy.sparse as sp

    with h5py.File(path, "r") as f:
        x = sp.csr_matrix(np.asarray(f["X"][:], dtype=np.float32))
        y = np.asarray(f["Y"][:])
    labels = [str(int(v)) if float(v).is_integer() else str(v) for v in y]
    categories = sorted(set(labels), key=lambda s: (len(s), s))
    obs = pd.DataFrame(
        {"cluster": pd.Categorical(labels, categories=categories)},
        index=[f"cell_{i}" for i in range(x.shape[0])],
    )
    var = pd.DataFrame(index=[f"gene_{j}" for j in range(x.shape[1])])
    adata = anndata.AnnData(X=x, obs=obs, var=var)
    adata.layers["counts"] = x.copy()
    return adata


def read_h5ad(path: Path, layer: str | None, labels_key: str) -> Dataset:
    """Any AnnData file, after checking that the layer and the labels exist."""
    import anndata

    adata = anndata.read_h5ad(path)
    if labels_key not in adata.obs:
        msg = f"--labels-key {labels_key!r} is not an obs column of {path} (columns: {list(adata.obs.columns)[:20]})."
        raise SystemExit(msg)
    if layer is not None and layer not in adata.layers:
        msg = f"--layer {layer!r} is not a layer of {path} (layers: {list(adata.layers)})."
        raise SystemExit(msg)
    return Dataset(path.stem, adata, layer, labels_key, str(path))


def load_dataset(args: argparse.Namespace) -> Dataset:
    """The dataset the flags select (PBMC 68k counts by default), reshaped by ``--top-genes``/``--thin``."""
    data = _load_dataset(args)
    top, thin = getattr(args, "top_genes", None), getattr(args, "thin", None)
    return data if top is None and thin is None else reshape(data, top, thin, args.seed)


def reshape(data: Dataset, top_genes: int | None, thin: float | None, seed: int) -> Dataset:
    """Another regime of the same cells: the ``top_genes`` most detected features, thinned counts.

    Thinning keeps each count with probability ``thin`` (``Binomial(x, thin)``), as if the
    cells had been sequenced less deeply; rows left without a count are dropped. The name
    records both, so summaries of the reshaped data do not overwrite the original's.
    """
    import scipy.sparse as sp

    adata, layer = data.adata, data.layer
    x = sp.csr_matrix(adata.X if layer is None else adata.layers[layer])
    keep = np.arange(x.shape[1])
    if top_genes is not None:
        detected = np.asarray((x > 0).sum(axis=0)).ravel()
        keep = np.sort(np.argsort(-detected, kind="stable")[:top_genes])
    x = x[:, keep].copy()
    if thin is not None:
        if not 0 < thin <= 1 or data.layer is None:
            raise SystemExit("--thin needs counts in a layer and a probability in (0, 1].")
        rng = np.random.default_rng(seed)
        x.data = rng.binomial(x.data.astype(np.int64), thin).astype(np.float32)
        x.eliminate_zeros()
    rows = np.flatnonzero(np.diff(x.indptr) > 0)
    out = adata[rows, keep].copy()
    out.X = x[rows].copy()
    if layer is not None:
        out.layers[layer] = x[rows].copy()
    name = data.name + (f"_top{top_genes}" if top_genes else "") + (f"_thin{thin:g}" if thin else "")
    return Dataset(name, out, layer, data.labels_key, f"{data.source}, reshaped")


def _load_dataset(args: argparse.Namespace) -> Dataset:
    ds = sc_sed.datasets
    h5 = args.bladder if args.bladder is not None else args.h5ad
    if h5 is not None and h5.suffix == ".h5":
        name = "bladder" if args.bladder is not None or "bladder" in h5.name else h5.stem
        return Dataset(name, read_bladder(h5), "counts", "cluster", str(h5))
    if args.h5ad is not None:
        return read_h5ad(args.h5ad, args.layer, args.labels_key)
    if args.smoke:
        adata = ds.synthetic_counts(n_cells=120, n_genes=40, n_types=3, n_markers=5, seed=args.seed)
        return Dataset("smoke", adata, "counts", "cell_type", "synthetic_counts(120, 40)")
    if args.digits:
        return Dataset("digits", ds.digits(), None, "digit", "sklearn digits")
    if args.showers:
        return Dataset(
            "showers", ds.synthetic_showers(seed=args.seed), None, "particle", "synthetic_showers"
        )
    return Dataset(
        "pbmc68k", ds.pbmc68k_counts(), "counts", "bulk_labels", "scanpy pbmc68k_reduced"
    )


def budget_key(data: Dataset) -> str:
    """Preset name for a dataset (any other AnnData uses the generic ``h5ad`` preset)."""
    return data.name if data.name in PRESETS else "h5ad"


def split(data: Dataset, fraction: float, seed: int) -> tuple[AnnData, AnnData]:
    """Training and held-out AnnData, holding out ``fraction`` of every label (seeded)."""
    labels = data.adata.obs[data.labels_key].astype(str)
    train_idx, held_idx = stratified_split(labels, fraction, seed)
    return data.adata[train_idx].copy(), data.adata[held_idx].copy()


def label_counts(adata: AnnData, key: str) -> dict[Any, int]:
    """``{label: n}`` of the rows (the held-out label mix to generate), labels as stored."""
    counts = adata.obs[key].value_counts()
    return {k: int(v) for k, v in counts.items() if v > 0}


def zero_fraction(adata: AnnData, layer: str | None) -> float:
    """Fraction of exact zeros of the values."""
    import scipy.sparse as sp

    x = sp.csr_matrix(adata.X if layer is None else adata.layers[layer])
    x.eliminate_zeros()
    return 1.0 - x.nnz / (x.shape[0] * x.shape[1])


# -- methods --------------------------------------------------------------------------------


@dataclass
class MethodRun:
    """Generated rows of one method and what they cost."""

    synth: AnnData
    train_seconds: float
    generate_seconds: float
    train_shared_with: str | None = None
    reconstruction: AnnData | None = None
    reconstruct_seconds: float | None = None
    model: Any = None  # the trained model (SED only), for diagnostics such as fidelity.py


@dataclass(frozen=True)
class RunContext:
    """What every method's runner needs."""

    train: AnnData
    data: Dataset
    budget: Budget
    counts: dict[Any, int]
    accelerator: str
    seed: int
    gen_batch_size: int
    progress: bool
    heldout: AnnData | None = None  # set: SED also reconstructs these rows (no diffusion)
    sed_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # more SEDModel args
    sed_seed: int | None = None  # seed of SED's initialisation and training (None: seed)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy, torch and scvi-tools (their data splitters) alike."""
    import lightning.pytorch as lp
    import scvi

    scvi.settings.seed = seed
    lp.seed_everything(seed, verbose=False)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), wall-clock seconds)``."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def build_sed(ctx: RunContext) -> sc_sed.SEDModel:
    """An untrained SEDModel on the training split with the budget's sizes (seeded)."""
    b = ctx.budget
    train = ctx.train.copy()
    sc_sed.SEDModel.setup_anndata(train, layer=ctx.data.layer, labels_key=ctx.data.labels_key)
    seed_all(ctx.seed if ctx.sed_seed is None else ctx.sed_seed)
    sizes = {
        "n_hidden": b.sed_n_hidden,
        "n_ff": None if b.sed_n_hidden is None else 2 * b.sed_n_hidden,
        "n_layers": b.sed_n_layers,
        "n_heads": b.sed_n_heads,
        "n_latent": b.sed_n_latent,
        "denoiser_widths": b.denoiser_widths,
    }
    sizes = {k: v for k, v in sizes.items() if v is not None}  # None: the model's default
    return sc_sed.SEDModel(train, **sizes, **ctx.sed_kwargs)


def sed_batch_kwargs(budget: Budget) -> dict[str, int]:
    """``batch_size`` for SED's autoencoder, or nothing (the model's default) when None."""
    return {} if budget.sed_batch_size is None else {"batch_size": budget.sed_batch_size}


def train_sed_model(ctx: RunContext, model: sc_sed.SEDModel) -> float:
    """Train both SED stages with the budget's epochs and minibatch; return the seconds."""
    b = ctx.budget
    _, seconds = timed(
        lambda: model.train(
            b.sed_epochs,
            b.sed_diffusion_epochs,
            accelerator=ctx.accelerator,
            enable_progress_bar=ctx.progress,
            **sed_batch_kwargs(b),
        )
    )
    return seconds


def sed_samples(ctx: RunContext, model: sc_sed.SEDModel, train_s: float) -> MethodRun:
    """Generate the held-out label mix with a trained SED (and reconstruct the held-out rows)."""
    synth, gen_s = timed(
        lambda: model.generate(
            None,
            labels=ctx.counts,
            n_steps=ctx.budget.n_steps,
            seed=ctx.seed,
            batch_size=ctx.gen_batch_size,
            progress_bar=ctx.progress,
        )
    )
    run = MethodRun(synth, train_s, gen_s, model=model)
    if ctx.heldout is not None:
        run.reconstruction, run.reconstruct_seconds = timed(
            lambda: model.reconstruct(
                ctx.heldout.copy(), seed=ctx.seed, batch_size=ctx.gen_batch_size
            )
        )
    return run


def run_sed(ctx: RunContext) -> MethodRun:
    """Train SED (both stages) on the training split and generate the held-out label mix."""
    model = build_sed(ctx)
    return sed_samples(ctx, model, train_sed_model(ctx, model))


def run_dense(ctx: RunContext, variants: Sequence[str]) -> dict[str, MethodRun]:
    """Train one DenseDDPM; generate its raw and/or auto-thresholded output (same seed).

    The thresholded generation time includes calibrating the threshold (raw samples of as
    many rows as the training split).
    """
    from sc_sed.baselines import DenseDDPM

    b = ctx.budget
    seed_all(ctx.seed)
    model = DenseDDPM(
        ctx.train, layer=ctx.data.layer, labels_key=ctx.data.labels_key, widths=b.denoiser_widths
    )
    _, train_s = timed(
        lambda: model.train(
            b.dense_epochs,
            accelerator=ctx.accelerator,
            seed=ctx.seed,
            progress_bar=ctx.progress,
            enable_model_summary=ctx.progress,
        )
    )
    runs = {}
    for i, variant in enumerate(variants):
        threshold = "auto" if variant == "thresholded" else None
        synth, gen_s = timed(
            lambda t=threshold: model.generate(
                None,
                labels=ctx.counts,
                n_steps=b.n_steps,
                threshold=t,
                seed=ctx.seed,
                batch_size=ctx.gen_batch_size,
                progress_bar=ctx.progress,
            )
        )
        runs[variant] = MethodRun(synth, train_s, gen_s, variants[0] if i else None)
    return runs


def run_scvi(ctx: RunContext) -> MethodRun:
    """Train scVI on the training split and sample the held-out label mix from its prior."""
    from sc_sed.baselines import ScVIPrior

    seed_all(ctx.seed)
    model = ScVIPrior(ctx.train, layer=ctx.data.layer, labels_key=ctx.data.labels_key)
    _, train_s = timed(
        lambda: model.train(
            ctx.budget.scvi_epochs,
            accelerator=ctx.accelerator,
            seed=ctx.seed,
            progress_bar=ctx.progress,
        )
    )
    synth, gen_s = timed(
        lambda: model.generate(
            None,
            labels=ctx.counts,
            seed=ctx.seed,
            batch_size=ctx.gen_batch_size,
            progress_bar=ctx.progress,
        )
    )
    return MethodRun(synth, train_s, gen_s)


def run_methods(ctx: RunContext, methods: Sequence[str]) -> dict[str, MethodRun]:
    """Run the selected methods in the canonical order."""
    runs: dict[str, MethodRun] = {}
    if "sed" in methods:
        print("training SED ...", flush=True)
        runs["sed"] = run_sed(ctx)
    dense = [m for m in ("dense", "thresholded") if m in methods]
    if dense:
        print("training the dense DDPM ...", flush=True)
        runs.update(run_dense(ctx, dense))
    if "scvi" in methods:
        print("training scVI ...", flush=True)
        runs["scvi"] = run_scvi(ctx)
    for name, run in runs.items():
        print(
            f"  {name}: train {run.train_seconds:.1f} s, generate {run.generate_seconds:.1f} s",
            flush=True,
        )
    return runs


# -- evaluation -----------------------------------------------------------------------------


def evaluate_run(
    heldout: AnnData, synth: AnnData, train: AnnData, data: Dataset, seed: int
) -> pd.DataFrame:
    """``sc_sed.tl.evaluate`` of one method (plus jet observables for images with η/φ)."""
    df = sc_sed.tl.evaluate(
        heldout, synth, layer=data.layer, groupby=data.labels_key, train=train, seed=seed
    )
    if data.physics:
        physics = sc_sed.tl.compare_physics(
            heldout, synth, layer=data.layer, synth_layer=data.layer, groupby=data.labels_key
        )
        df = pd.concat([df, physics], ignore_index=True)
    return df


def overall(df: pd.DataFrame) -> dict[str, float]:
    """Metric → value over all rows (group ``"all"``)."""
    rows = df[df["group"] == "all"]
    return {str(m): float(v) for m, v in zip(rows["metric"], rows["value"], strict=True)}


def _check(name: str, value: float | None, passed: bool | None, detail: str) -> dict[str, Any]:
    return {"name": name, "value": value, "passed": passed, "detail": detail}


def _relative_check(name: str, metric: str, results: dict[str, dict[str, float]]) -> dict[str, Any]:
    """SED's ``metric`` ≤ the thresholded DDPM's (n/a when either is missing)."""
    sed, ref = results["sed"].get(metric), results.get("thresholded", {}).get(metric)
    if sed is None or ref is None or math.isnan(sed) or math.isnan(ref):
        return _check(name, sed, None, "thresholded DDPM not run")
    return _check(name, sed, bool(sed <= ref), f"SED {sed:.4f} vs thresholded DDPM {ref:.4f}")


def design_targets(results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """DESIGN targets for SED, each ``{name, value, passed (bool or None), detail}``."""
    if "sed" not in results:
        return []
    sed = results["sed"]
    spurious = sed["n_spurious_features"]
    diff = sed["zero_fraction_synth"] - sed["zero_fraction_real"]
    return [
        _check(
            "SED n_spurious_features == 0",
            spurious,
            spurious == 0,
            f"{spurious:.0f} spurious features",
        ),
        _check(
            f"SED |zero_fraction_synth - real| <= {ZERO_FRACTION_TOLERANCE}",
            abs(diff),
            abs(diff) <= ZERO_FRACTION_TOLERANCE,
            f"synth {sed['zero_fraction_synth']:.4f} vs real {sed['zero_fraction_real']:.4f}",
        ),
        _check(
            f"SED scc >= {SCC_TARGET}",
            sed["scc"],
            sed["scc"] >= SCC_TARGET,
            f"scc {sed['scc']:.4f}",
        ),
        _relative_check("SED mmd <= thresholded DDPM mmd", "mmd", results),
        _relative_check(
            "SED discriminability AUROC <= thresholded DDPM's", "discriminability_auroc", results
        ),
    ]


def sparsity_notes(results: dict[str, dict[str, float]]) -> list[str]:
    """Where the baselines miss the sparsity targets SED is held to."""
    notes = []
    for method in ("dense", "thresholded", "scvi"):
        if method not in results:
            continue
        r = results[method]
        diff = r["zero_fraction_synth"] - r["zero_fraction_real"]
        problems = []
        if abs(diff) > ZERO_FRACTION_TOLERANCE:
            problems.append(
                f"zero fraction {r['zero_fraction_synth']:.4f} vs real {r['zero_fraction_real']:.4f}"
            )
        if r["n_spurious_features"] > 0:
            problems.append(f"{r['n_spurious_features']:.0f} spurious features")
        verdict = (
            "fails sparsity: " + "; ".join(problems) if problems else "meets the sparsity targets"
        )
        notes.append(f"note  {METHOD_NAMES[method]} {verdict}")
    return notes


# -- report ---------------------------------------------------------------------------------


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric == "n_spurious_features":
        return f"{value:.0f}"
    if metric.endswith("_s"):
        return f"{value:.1f}"
    if metric.startswith("zero_fraction") or abs(value) < 0.01:
        return f"{value:.4f}"
    return f"{value:.3f}"


def comparison_table(
    results: dict[str, dict[str, float]], runs: dict[str, MethodRun], metrics: Sequence[str]
) -> str:
    """Plain-text table: one row per metric (then timings), one column per method."""
    methods = list(results)
    rows = [["metric", *[METHOD_NAMES[m] for m in methods]]]
    rows += [[k, *[_fmt(k, results[m].get(k)) for m in methods]] for k in metrics]
    for key, attr in (("train_s", "train_seconds"), ("generate_s", "generate_seconds")):
        cells = []
        for m in methods:
            mark = "*" if key == "train_s" and runs[m].train_shared_with else ""
            cells.append(_fmt(key, getattr(runs[m], attr)) + mark)
        rows.append([key, *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(r.train_shared_with for r in runs.values()):
        lines.append("* the same DenseDDPM as the dense column (trained once)")
    return "\n".join(lines)


def print_targets(targets: list[dict[str, Any]], notes: list[str]) -> None:
    """PASS/FAIL lines of the DESIGN targets, then the baselines' sparsity notes."""
    for t in targets:
        verdict = "n/a " if t["passed"] is None else ("PASS" if t["passed"] else "FAIL")
        print(f"{verdict}  {t['name']}: {t['detail']}")
    for note in notes:
        print(note)


def figures(
    heldout: AnnData, runs: dict[str, MethodRun], table: pd.DataFrame, data: Dataset, out: Path
) -> list[str]:
    """Dropout pattern of each method (real vs synthetic) and the metric summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for method, run in runs.items():
        axes = sc_sed.pl.dropout_pattern(
            heldout,
            run.synth,
            layer=data.layer,
            kind="both",
            labels=("held-out real", METHOD_NAMES[method]),
            show=False,
        )
        fig = axes[0].figure
        fig.suptitle(f"{data.name}: {METHOD_NAMES[method]}")
        written.append(_save(fig, out / f"dropout_pattern_{method}.png", plt))
    shown = [m for m in (*KEY_METRICS, *PHYSICS_METRICS) if m in set(table["metric"])]
    axes = sc_sed.pl.metrics(table, metrics=shown, groups=["all"], show=False)
    written.append(_save(axes[0].figure, out / "metrics.png", plt))
    return written


def _save(fig, path: Path, plt) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def code_state() -> dict[str, Any]:
    """sc_sed version, git commit and a digest of uncommitted changes to the package.

    Other engineers may change the package between runs; the digest tells runs apart.
    """
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def git(*cmd: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *cmd], cwd=root, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    diff = (git("diff", "HEAD", "--", "sc_sed") or "") + (
        git("status", "--porcelain", "--", "sc_sed") or ""
    )
    return {
        "sc_sed_version": sc_sed.__version__,
        "git_commit": (git("rev-parse", "HEAD") or "").strip() or None,
        "package_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None,
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON values (NaN → None, NumPy → Python, Paths → str)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


# -- main -----------------------------------------------------------------------------------


def _quiet_libraries(progress: bool) -> None:
    """Silence Lightning/scvi-tools chatter (device summaries, dataloader hints)."""
    import lightning.fabric  # noqa: F401  (their import sets the levels that are overridden here)
    import lightning.pytorch  # noqa: F401
    import scvi  # noqa: F401

    level = logging.WARNING if progress else logging.ERROR
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("lightning", "scvi")]
    for name in ["lightning", "scvi", *names]:
        logging.getLogger(name).setLevel(level)


def _evaluate_all(
    heldout: AnnData, runs: dict[str, MethodRun], train: AnnData, data: Dataset, seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    tables, seconds = {}, {}
    for method, run in runs.items():
        tables[method], seconds[method] = timed(
            lambda r=run: evaluate_run(heldout, r.synth, train, data, seed)
        )
    return tables, seconds


def evaluate_reconstruction(
    heldout: AnnData, run: MethodRun | None, train: AnnData, data: Dataset, seed: int
) -> dict[str, Any] | None:
    """Metrics of SED's autoencoder alone: held-out rows encoded and decoded (no diffusion)."""
    if run is None or run.reconstruction is None:
        return None
    table, seconds = timed(lambda: evaluate_run(heldout, run.reconstruction, train, data, seed))
    return {
        "overall": overall(table),
        "reconstruct_seconds": run.reconstruct_seconds,
        "evaluate_seconds": seconds,
    }


def reconstruction_line(recon: dict[str, Any]) -> str:
    """One line: SED's autoencoder alone, to tell whether it or the latent diffusion limits SED."""
    values = recon["overall"]
    shown = ("zero_fraction_synth", "scc", "mmd", "discriminability_auroc", "label_accuracy")
    cells = ", ".join(f"{k} {_fmt(k, values.get(k))}" for k in shown)
    return f"diagnostic: SED autoencoder alone (held-out rows encoded + decoded, no diffusion): {cells}"


def _method_json(run: MethodRun, table: pd.DataFrame, eval_s: float) -> dict[str, Any]:
    return {
        "overall": overall(table),
        "metrics": table.to_dict(orient="records"),
        "train_seconds": run.train_seconds,
        "train_shared_with": run.train_shared_with,
        "generate_seconds": run.generate_seconds,
        "evaluate_seconds": eval_s,
        "n_generated": int(run.synth.n_obs),
        "provenance": dict(run.synth.uns.get("sc_sed", {})),
    }


def _dataset_json(data: Dataset, train: AnnData, heldout: AnnData) -> dict[str, Any]:
    return {
        "name": data.name,
        "source": data.source,
        "shape": list(data.adata.shape),
        "layer": data.layer,
        "labels_key": data.labels_key,
        "n_train": int(train.n_obs),
        "n_heldout": int(heldout.n_obs),
        "zero_fraction": zero_fraction(data.adata, data.layer),
        "physics": data.physics,
    }


def _banner(data: Dataset, budget: Budget, n_train: int, n_held: int, accelerator: str) -> None:
    print(
        f"dataset {data.name}: {data.adata.n_obs} x {data.adata.n_vars}, layer={data.layer}, "
        f"labels={data.labels_key}; train {n_train}, held-out {n_held}; accelerator={accelerator}, "
        f"torch threads={torch.get_num_threads()}",
        flush=True,
    )
    print(f"budget: {dataclasses.asdict(budget)}", flush=True)
    if data.name == "bladder":
        print(
            f"WARNING: {data.adata.n_vars:,} genes and ~1k non-zeros per row: CPU budgets limit "
            f"quality here (SED {'default' if budget.sed_epochs is None else budget.sed_epochs} "
            "autoencoder epochs, dense DDPM "
            f"{budget.dense_epochs} epochs); all methods are under-trained, SED most of all. "
            "Use a GPU (--device gpu) and more epochs for method-quality conclusions.",
            flush=True,
        )
    if not data.physics and data.name == "digits":
        print(
            "note: digits have no eta/phi pixel centres; use --showers for jet observables.",
            flush=True,
        )


@dataclass(frozen=True)
class Checks:
    """DESIGN target checks for SED and notes on the baselines' sparsity."""

    targets: list[dict[str, Any]]
    notes: list[str]


def report(
    results: dict[str, dict[str, float]],
    runs: dict[str, MethodRun],
    checks: Checks,
    data: Dataset,
    budget: Budget,
    total_s: float,
    recon: dict[str, Any] | None,
) -> None:
    """Print the PASS/FAIL lines, the comparison table, the SED diagnostic and the total time."""
    print()
    print_targets(checks.targets, checks.notes)
    print()
    print(
        comparison_table(results, runs, [*KEY_METRICS, *(PHYSICS_METRICS if data.physics else ())])
    )
    over = total_s > 60 * budget.max_minutes
    warning = (
        f"  WARNING: over the {budget.max_minutes:g}-minute budget; lower the epochs"
        if over
        else ""
    )
    if recon is not None:
        print(reconstruction_line(recon))
    print(f"\ntotal {total_s:.0f} s ({total_s / 60:.1f} min){warning}")


def build_payload(
    args: argparse.Namespace,
    data: Dataset,
    splits: tuple[AnnData, AnnData],
    budget: Budget,
    runs: dict[str, MethodRun],
    evaluation: tuple[dict[str, pd.DataFrame], dict[str, float]],
    checks: Checks,
    env: dict[str, Any],
) -> dict[str, Any]:
    """Everything the run measured, for ``quality.json``."""
    tables, eval_s = evaluation
    return {
        "dataset": _dataset_json(data, *splits),
        "settings": {
            "budget": dataclasses.asdict(budget),
            "args": {k: v for k, v in vars(args).items() if k != "out"},
            "evaluation": next(iter(tables.values())).attrs.get("sc_sed", {}) if tables else {},
        },
        "environment": env,
        "methods": {m: _method_json(runs[m], tables[m], eval_s[m]) for m in runs},
        "targets": checks.targets,
        "notes": checks.notes,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load, split, train, generate, evaluate, report; returns the JSON payload."""
    start = time.perf_counter()
    env = environment(resolve_device("cuda" if args.device == "gpu" else args.device))
    env.update(code_state())
    data = load_dataset(args)
    budget = resolve_budget(args, budget_key(data))
    out = args.out or Path(__file__).resolve().parent / "results" / "quality" / data.name
    out.mkdir(parents=True, exist_ok=True)
    train, heldout = split(data, args.heldout_fraction, args.seed)
    _banner(data, budget, train.n_obs, heldout.n_obs, args.device)
    ctx = RunContext(
        train,
        data,
        budget,
        label_counts(heldout, data.labels_key),
        args.device,
        args.seed,
        args.gen_batch_size,
        args.progress,
        None if args.no_sed_reconstruction else heldout,
    )
    runs = run_methods(ctx, args.methods)
    print("evaluating ...", flush=True)
    tables, eval_s = _evaluate_all(heldout, runs, train, data, args.seed)
    recon = evaluate_reconstruction(heldout, runs.get("sed"), train, data, args.seed)
    results = {m: overall(t) for m, t in tables.items()}
    checks = Checks(design_targets(results), sparsity_notes(results))
    table = pd.concat([t.assign(method=m) for m, t in tables.items()], ignore_index=True)
    table.to_csv(out / "metrics.csv", index=False)
    written = [] if args.no_figures else figures(heldout, runs, table, data, out)
    payload = build_payload(
        args, data, (train, heldout), budget, runs, (tables, eval_s), checks, env
    )
    if recon is not None:
        payload["methods"]["sed"]["reconstruction"] = recon
    payload["figures"] = written
    payload["total_seconds"] = time.perf_counter() - start
    payload["environment"]["load_average_end"] = environment(torch.device("cpu"))["load_average"]
    report(results, runs, checks, data, budget, payload["total_seconds"], recon)
    path = write_json(out / "quality.json", _jsonable(payload))
    print(f"wrote {path}, metrics.csv and {len(written)} figures", flush=True)
    return payload


def run_benchmark(args: argparse.Namespace, body: Callable[[argparse.Namespace], Any]) -> Any:
    """``body(args)`` with ``--threads`` torch threads (1 on a CPU by default), the libraries'
    loggers quiet and their warnings ignored; torch's thread count is restored afterwards.

    Shared by the benchmark scripts that train models (``args`` has ``device``, ``threads``
    and optionally ``progress``).
    """
    threads = torch.get_num_threads()
    on_cpu = args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())
    wanted = args.threads or (1 if on_cpu else None)
    if wanted:
        torch.set_num_threads(wanted)
    _quiet_libraries(getattr(args, "progress", False))
    try:
        with warnings.catch_warnings():
            for kind in (UserWarning, DeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", kind)
            return body(args)
    finally:
        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; torch's thread count is restored afterwards."""
    return run_benchmark(parse_args(argv), run)


if __name__ == "__main__":
    main()
