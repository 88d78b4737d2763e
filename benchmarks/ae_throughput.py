"""Autoencoder training throughput on long rows: tokens per second of one optimiser step.

Times SED's autoencoder training step (the module's forward on framed tokens, backward,
gradient clipping at 1, AdamW step, as the training plan does it) on minibatches of real
rows: the mouse bladder counts (``--bladder``, 20,670 genes, 290-3,700 non-zeros per row,
read by a path relative to the repository) by default, PBMC 68k with ``--pbmc``, tiny
synthetic counts with ``--smoke``. The model is built by :class:`sc_sed.SEDModel` from the
data (index head, allowed features, hazard initialisation as a user gets them), at one or
more ``--sizes``: ``preset`` (the quality benchmark's CPU preset: width 64, 1 layer,
latent 32) and ``default`` (the model's defaults: width 128, 2 layers, latent 64).

Minibatches come from the training loader's length-bucketing sampler
(:class:`sc_sed.train.LengthBucketBatchSampler`, seeded) or, with ``--no-bucket``, from a
random permutation; every configuration times the same batches. ``real tok/s`` counts a
row's non-zero pairs plus its END target (what the loss is over); ``padded tok/s`` counts
the padded positions the step computes on. With ``--precision bf16`` the forward runs under
bf16 autocast (as ``model.train(precision="bf16-mixed")``).

Run ``python benchmarks/ae_throughput.py --help``; ``--smoke`` runs in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, format_table, median, resolve_device, synchronize, write_json  # noqa: E402
from quality import BLADDER_FILE, read_bladder  # noqa: E402

import sc_sed  # noqa: E402
from sc_sed.data import csr_to_tokens  # noqa: E402
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY  # noqa: E402
from sc_sed.train import LengthBucketBatchSampler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZES: dict[str, dict[str, int]] = {
    "preset": {"n_hidden": 64, "n_ff": 128, "n_layers": 1, "n_latent": 32},
    "default": {},
    "smoke": {"n_hidden": 16, "n_ff": 32, "n_layers": 1, "n_latent": 8},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = p.add_mutually_exclusive_group()
    data.add_argument("--bladder", type=Path, default=BLADDER_FILE, help="HDF5 counts (X, Y)")
    data.add_argument("--pbmc", action="store_true", help="PBMC 68k counts (765 genes)")
    data.add_argument("--smoke", action="store_true", help="tiny synthetic data and model")
    p.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["preset", "default"])
    p.add_argument("--n-heads", type=int, help="attention heads (default: the model's, 4)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--n-batches", type=int, default=6, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--no-bucket", action="store_true", help="random batches (no length bucketing)")
    p.add_argument("--precision", choices=["32", "bf16"], default="32")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "ae_throughput.json"
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes = ["smoke"]
    return args


def load_counts(args: argparse.Namespace):
    """The AnnData whose rows are timed (``counts`` layer) and its name."""
    if args.smoke:
        return sc_sed.datasets.synthetic_counts(64, 300, library_size=400.0, seed=0), "smoke"
    if args.pbmc:
        return sc_sed.datasets.pbmc68k_counts(), "pbmc68k"
    if not args.bladder.exists():
        msg = f"{args.bladder} not found; pass --bladder PATH, --pbmc or --smoke."
        raise SystemExit(msg)
    return read_bladder(args.bladder), "bladder"


def batches(x: sp.csr_matrix, args: argparse.Namespace) -> list[np.ndarray]:
    """The row indices of ``warmup + n_batches`` minibatches, the same for every size."""
    n = args.warmup + args.n_batches
    torch.manual_seed(args.seed)
    if args.no_bucket:
        perm = np.random.default_rng(args.seed).permutation(x.shape[0])
        rows = [perm[i : i + args.batch_size] for i in range(0, len(perm), args.batch_size)]
    else:
        sampler = LengthBucketBatchSampler(np.diff(x.indptr), args.batch_size)
        rows = [np.asarray(b) for b in sampler]
    rows = [r for r in rows if len(r) == args.batch_size]
    return [rows[i % len(rows)] for i in range(n)]


def build_module(adata, size: str, device: torch.device, n_heads: int | None = None):
    """The module a user's ``SEDModel`` trains, on ``device``, in training mode."""
    sc_sed.SEDModel.setup_anndata(adata, layer="counts")
    heads = {} if n_heads is None else {"n_heads": n_heads}
    model = sc_sed.SEDModel(adata, **SIZES[size], **heads)
    module = model.module.to(device)
    module.train()
    return module, model.max_nonzero_, model.index_head_


def time_size(adata, size: str, rows: list[np.ndarray], args, device) -> dict[str, Any]:
    """Median seconds per step and tokens per second of one model size."""
    module, max_nonzero, head = build_module(adata, size, device, args.n_heads)
    params = [p for n, p in module.named_parameters() if n.startswith(("encoder.", "decoder."))]
    opt = torch.optim.AdamW(params, lr=1e-4)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else nullcontext()
    )
    x = adata.layers["counts"]
    times, real, padded = [], [], []
    for i, r in enumerate(rows):
        tok = csr_to_tokens(x[r], max_nonzero=max_nonzero, on_long_rows="truncate", device=device)
        batch = {TOKENS_INDEX_KEY: tok.index, TOKENS_VALUE_KEY: tok.value}
        synchronize(device)
        start = time.perf_counter()
        with autocast:
            loss = module(batch)[2].loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            real.append(int(tok.n_nonzero.sum()) + len(r))  # pairs + END targets
            padded.append(tok.index.numel())
    step = median(times)
    return {
        "sizes": size,
        "n_heads": module.encoder.blocks[0].self_attn.n_heads,
        "index_head": head,
        "n_params": sum(p.numel() for p in params),
        "step_s": step,
        "real_tokens_per_step": float(np.mean(real)),
        "padding": float(np.sum(padded) / np.sum(real)),
        "real_tokens_per_s": float(np.sum(real) / np.sum(times)),
        "padded_tokens_per_s": float(np.sum(padded) / np.sum(times)),
        "rows_per_s": float(len(times) * args.batch_size / np.sum(times)),
    }


COLUMNS = (
    ("sizes", "sizes", "s"), ("n_heads", "heads", "d"), ("index_head", "head", "s"), ("n_params", "params", "d"),
    ("step_s", "step s", ".3f"), ("real_tokens_per_step", "tok/step", ".0f"),
    ("padding", "pad", ".2f"), ("real_tokens_per_s", "real tok/s", ".0f"),
    ("padded_tokens_per_s", "padded tok/s", ".0f"), ("rows_per_s", "rows/s", ".1f"),
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON report."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    adata, name = load_counts(args)
    rows = batches(adata.layers["counts"], args)
    results = [time_size(adata, size, rows, args, device) for size in args.sizes]
    report = {
        "dataset": name,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": environment(device),
        "rows": results,
    }
    print(f"{name}: autoencoder training step, batch {args.batch_size}, "
          f"{'random' if args.no_bucket else 'length-bucketed'} batches, precision {args.precision}, "
          f"{report['environment']['device']}, {torch.get_num_threads()} thread(s)")  # fmt: skip
    print(format_table(results, COLUMNS))
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
