"""Generation throughput: generated cells per second of SED, the dense DDPM and scVI's prior.

One run trains each model briefly (speed, not quality) and times ``generate`` at two
scales: PBMC counts (``sc_sed.datasets.pbmc68k_counts()``, 765 genes, ~250 non-zeros per
cell) and the mouse bladder counts (20,670 genes, ~1,000 non-zeros per cell) read from
``--bladder`` (default ``../shared/data/mouse_bladder_cell_select_2100.h5`` relative to
the repository root; that scale is skipped with a message when the file is absent).

Realistic lengths (the "calibrated hazard")
-------------------------------------------
A briefly trained decoder stops after the wrong number of pairs, and SED's cost grows
with the pairs it emits. So after training, SED's index head is set to a history-free
hazard: its output weights and its latent term are zeroed and its biases make every
allowed feature present independently with probability ``p = mean non-zeros / allowed
features``, through the head's own ``init_hazards`` with rate ``p`` on the allowed
features (factorised head: offset biases ``logit(p)``, block biases ``logit(1 - (1 - p)^k)``
over each block's ``k`` allowed features; with the current-block hazard this is exactly
independent detections). Generated rows then have Binomial lengths with the data's mean
(printed as ``nnz/cell`` beside the data's), and every step does the work of the real decoder; the
value head and the latent diffusion are the trained ones. The
dense DDPM and scVI are used as trained (their cost does not depend on the output).

All methods use the same number of diffusion steps (``--n-steps``; scVI has none), the
same generation batch size and seed. Each method is timed once after a short untimed
warm-up call; the determinism column checks that two calls with the same seed give the
same matrix. On CUDA, SED is also timed with one decoding step captured in a CUDA graph
under bf16 autocast (``sed_graph``), set on the decoder because ``SEDModel.generate``
does not take decoder options.

Run ``python benchmarks/generation.py --help``; results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, format_table, resolve_device, synchronize, write_json  # noqa: E402
from quality import BLADDER_FILE, read_bladder  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed._threads import recommended_threads  # noqa: E402

CPU_BATCH, GPU_BATCH = 256, 2048
COLUMNS = [
    ("scale", "scale", "s"),
    ("method", "method", "s"),
    ("n_cells", "cells", "d"),
    ("batch_size", "batch", "d"),
    ("seconds", "seconds", ".2f"),
    ("cells_per_s", "cells/s", ".1f"),
    ("nnz_per_cell", "nnz/cell", ".0f"),
    ("data_nnz_per_cell", "data nnz/cell", ".0f"),
    ("deterministic", "same seed", "s"),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--smoke`` shrinks everything to a seconds-long check)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: sc_sed's pick)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"rows generated together (default: {CPU_BATCH} on CPU, {GPU_BATCH} on GPU)",
    )
    p.add_argument(
        "--n-cells",
        type=int,
        default=None,
        help="cells timed per method (default: 4 batches, at most 8192)",
    )
    p.add_argument("--n-steps", type=int, default=50, help="diffusion steps (SED and dense)")
    p.add_argument("--train-cells", type=int, default=512, help="cells used for the brief training")
    p.add_argument("--epochs", type=int, default=2, help="training epochs of every stage")
    p.add_argument("--sed-hidden", type=int, default=64, help="SED width (default: the demo's 64)")
    p.add_argument("--sed-layers", type=int, default=1, help="SED layers (default: the demo's 1)")
    p.add_argument("--sed-latent", type=int, default=32, help="SED latent size (demo: 32)")
    p.add_argument("--scales", nargs="+", default=["pbmc", "bladder"], choices=["pbmc", "bladder"])
    p.add_argument(
        "--methods", nargs="+", default=["sed", "dense", "scvi"], choices=["sed", "dense", "scvi"]
    )
    p.add_argument(
        "--bladder",
        type=Path,
        default=BLADDER_FILE,
        help="bladder HDF5 with X counts (default: ../shared/data/mouse_bladder_cell_select_2100.h5 "
        "beside the repository)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/generation.json"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for the test suite")
    args = p.parse_args(argv)
    if args.smoke:
        args.scales, args.train_cells, args.epochs, args.n_steps = ["pbmc"], 48, 1, 3
        args.n_cells, args.batch_size, args.sed_hidden, args.sed_latent = 16, 8, 16, 8
    return args


# -- data ---------------------------------------------------------------------------------
def load_scale(name: str, args: argparse.Namespace):
    """The counts of one scale as AnnData (``layers["counts"]``), or None when absent."""
    if name == "pbmc":
        adata = sc_sed.datasets.pbmc68k_counts()
        return adata[:, :120].copy() if args.smoke else adata
    if not args.bladder.exists():
        print(
            f"[generation] bladder scale skipped: {args.bladder} not found (pass --bladder PATH)."
        )
        return None
    return read_bladder(args.bladder)


def training_subset(adata, n_cells: int, seed: int):
    """A random subset of ``n_cells`` rows (training is brief: speed, not quality)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(adata.n_obs, size=min(n_cells, adata.n_obs), replace=False))
    return adata[rows].copy()


# -- models -------------------------------------------------------------------------------
def calibrate_lengths(model, mean_nonzero: float) -> float:
    """Make SED's index head a history-free hazard with the data's mean row length.

    Returns the per-feature probability ``p`` (see the module docstring).
    """
    module = model.module
    head = module.decoder.index_head
    allowed = module.allowed_features.cpu()  # a buffer: all True without a mask
    p = min(max(mean_nonzero / int(allowed.sum()), 1e-6), 1 - 1e-6)
    with torch.no_grad():
        head.init_hazards(torch.where(allowed, p, 0.0))  # the head's own biases
        for name, param in head.named_parameters():  # no history, no latent term
            if name.endswith("weight") or name in ("offset_proj.1.bias", "context_offset"):
                param.zero_()
    return p


def _accelerator(device: torch.device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def train_sed(adata, args, device):
    """A briefly trained SED with calibrated lengths; returns ``(model, p)``."""
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    model = sc_sed.SEDModel(
        adata,
        n_hidden=args.sed_hidden,
        n_ff=2 * args.sed_hidden,
        n_layers=args.sed_layers,
        n_latent=args.sed_latent,
    )
    model.train(
        args.epochs,
        args.epochs,
        accelerator=_accelerator(device),
        batch_size=8 if device.type == "cpu" else 32,
        seed=args.seed,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    mean_nonzero = float(np.diff(adata.layers["counts"].indptr).mean())
    return model, calibrate_lengths(model, mean_nonzero)


def train_dense(adata, args, device):
    """A briefly trained dense DDPM."""
    from sc_sed.baselines import DenseDDPM

    model = DenseDDPM(adata, layer="counts")
    model.train(
        args.epochs, accelerator=_accelerator(device), seed=args.seed, progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    return model


def train_scvi(adata, args, device):
    """A briefly trained scVI (sampled from its prior)."""
    from sc_sed.baselines import ScVIPrior

    model = ScVIPrior(adata, layer="counts")
    model.train(args.epochs, accelerator=_accelerator(device), seed=args.seed, progress_bar=False)
    return model


# -- timing -------------------------------------------------------------------------------
def time_generation(
    generate: Callable[..., Any], n_cells: int, batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Time ``generate(n, seed=, batch_size=)`` once after a warm-up; check determinism."""
    small = min(n_cells, batch_size)
    first = generate(small, seed=1, batch_size=batch_size)  # warm-up, also the reference
    again = generate(small, seed=1, batch_size=batch_size)
    synchronize(device)
    start = time.perf_counter()
    out = generate(n_cells, seed=0, batch_size=batch_size)
    synchronize(device)
    seconds = time.perf_counter() - start
    x, y = sp.csr_matrix(first.X), sp.csr_matrix(again.X)
    same = x.shape == y.shape and (x != y).nnz == 0
    return {
        "n_cells": int(out.n_obs),
        "batch_size": int(batch_size),
        "seconds": seconds,
        "cells_per_s": out.n_obs / seconds,
        "nnz_per_cell": float(sp.csr_matrix(out.X).getnnz(axis=1).mean()),
        "deterministic": "yes" if same else "NO",
    }


def _generators(name: str, model, args, device) -> dict[str, Callable[..., Any]]:
    """``{method: generate(n, seed=, batch_size=)}`` for one trained model."""
    quiet = {"progress_bar": False}
    if name == "scvi":
        return {"scvi": functools.partial(model.generate, **quiet)}
    steps = {"n_steps": args.n_steps, **quiet}
    if name == "dense":
        return {"dense": functools.partial(model.generate, **steps)}
    out = {"sed": functools.partial(model.generate, **steps)}
    if device.type == "cuda":
        out["sed_graph"] = functools.partial(_graph_generate, model, **steps)
    return out


def _graph_generate(model, n_cells, **kwargs):
    """``SEDModel.generate`` with a CUDA-graph decoding step under bf16 autocast."""
    decoder = model.module.decoder
    plain = decoder.generate
    decoder.generate = functools.partial(plain, cuda_graph=True, autocast_dtype=torch.bfloat16)
    try:
        return model.generate(n_cells, **kwargs)
    finally:
        del decoder.generate  # back to the class method


TRAINERS = {"sed": train_sed, "dense": train_dense, "scvi": train_scvi}


def run_scale(scale: str, args, device, batch_size: int) -> list[dict[str, Any]]:
    """Train every method on one scale and time its generation."""
    adata = load_scale(scale, args)
    if adata is None:
        return []
    data_nnz = float(np.diff(adata.layers["counts"].indptr).mean())
    n_cells = args.n_cells or min(4 * batch_size, 8192)
    rows = []
    for method in args.methods:
        train = training_subset(adata, args.train_cells, args.seed)
        start = time.perf_counter()
        model = TRAINERS[method](train, args, device)
        extra = {}
        if method == "sed":
            model, p = model
            extra["feature_probability"] = p
        train_s = time.perf_counter() - start
        for name, generate in _generators(method, model, args, device).items():
            row = {"scale": scale, "method": name, "n_features": int(adata.n_vars)}
            row.update(time_generation(generate, n_cells, batch_size, device))
            row.update(data_nnz_per_cell=data_nnz, train_seconds=train_s, **extra)
            rows.append(row)
            print(format_table([row], COLUMNS).splitlines()[-1], flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; return the payload."""
    args = parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    device = resolve_device(args.device)
    threads = args.threads or recommended_threads()
    torch.set_num_threads(threads)
    batch_size = args.batch_size or (GPU_BATCH if device.type == "cuda" else CPU_BATCH)
    env = environment(device)
    print(f"[generation] device={env.get('gpu', device)} threads={threads} batch={batch_size}")
    print(format_table([], COLUMNS))
    rows = []
    for scale in args.scales:
        rows.extend(run_scale(scale, args, device, batch_size))
    print("\n" + format_table(rows, COLUMNS))
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {"rows": rows, "config": config, "environment": env, "batch_size": batch_size}
    path = write_json(args.out, payload)
    print(f"[generation] wrote {path}")
    return payload


if __name__ == "__main__":
    main()
