"""Peak memory of generation vs the number of rows: streamed to disk vs in memory.

A small, fast SED model is trained on the embedded PBMC counts (700 cells × 765 genes,
integer UMIs; the model's rows are capped at ``--max-nonzero`` non-zeros so that 10^5 rows
decode in minutes on one CPU thread — this measures memory, not quality). Then, for every
``n_cells`` and mode, a fresh Python process loads the model and calls
``model.generate(n_cells, out="cells.h5ad")`` (``stream``) or ``model.generate(n_cells)``
(``memory``), and reports its peak resident set (``VmHWM``) and the resident set just before
the call; their difference is what generation added.

    python benchmarks/generation_memory.py                  # about 6-8 minutes, one thread
    python benchmarks/generation_memory.py --smoke          # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CELLS = (10_000, 30_000, 100_000)
MEMORY_CELLS_MAX = 30_000  # in-memory reference only up to here (it grows with n_cells)


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def train(folder: Path, max_nonzero: int, seed: int) -> None:
    """Train the small model on the embedded PBMC counts and save it to ``folder``."""
    import sc_sed

    adata = sc_sed.datasets.pbmc68k_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="bulk_labels")
    model = sc_sed.SEDModel(
        adata, n_latent=8, n_hidden=32, n_layers=1, n_heads=2, n_ff=64,
        denoiser_widths=(64, 32), max_nonzero=max_nonzero, on_long_rows="truncate",
    )  # fmt: skip
    model.train(
        max_epochs=1, diffusion_max_epochs=1, batch_size=64, seed=seed,
        accelerator="cpu", enable_progress_bar=False,
    )  # fmt: skip
    model.save(folder, overwrite=True)


def _fake_batches(n_features: int, nnz: int):
    """Replace sampling + decoding by random CSR rows with ``nnz`` non-zeros (writer only)."""
    import numpy as np
    import scipy.sparse as sp

    def batches(codes, *args, **kwargs):
        rng = np.random.default_rng(0)
        batch_size = args[5]
        for start in range(0, codes.shape[0], batch_size):
            n = min(batch_size, codes.shape[0] - start)
            cols = np.sort(rng.random((n, n_features)).argsort(axis=1)[:, :nnz], axis=1)
            values = rng.integers(1, 20, size=(n, nnz)).astype(np.float32)
            indptr = np.arange(0, n * nnz + 1, nnz)
            yield sp.csr_matrix((values.ravel(), cols.ravel(), indptr), shape=(n, n_features))

    return batches


def child(
    model_dir: str, n_cells: int, mode: str, batch_size: int, n_steps: int, fake_nnz: int = 0
) -> dict:
    """Load the model, generate, and report peak memory (runs in its own process)."""
    import sc_sed

    model = sc_sed.SEDModel.load(model_dir, adata=False, accelerator="cpu")
    if fake_nnz:
        model._generate_batches = _fake_batches(model.module.n_features, fake_nnz)
    before = _rss_mb("VmRSS")
    start = time.perf_counter()
    kw = {"n_steps": n_steps, "batch_size": batch_size, "progress_bar": False, "seed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "stream":
            path = model.generate(n_cells, out=Path(tmp) / "cells.h5ad", **kw)
            size = path.stat().st_size
        else:
            synth = model.generate(n_cells, **kw)
            size = synth.X.data.nbytes + synth.X.indices.nbytes
            del synth
    return {
        "n_cells": n_cells,
        "mode": mode,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_rss_mb("VmHWM"), 1),
        "added_mb": round(_rss_mb("VmHWM") - before, 1),
        "output_mb": round(size / 2**20, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _run_child(model_dir: Path, n: int, mode: str, args) -> dict:
    cmd = [
        sys.executable, __file__, "--child", str(model_dir), "--n", str(n), "--mode", mode,
        "--batch-size", str(args.batch_size), "--n-steps", str(args.n_steps),
        "--fake-nnz", str(args.fake_nnz),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """Markdown table of the results."""
    lines = [
        "| n_cells | mode | RSS before (MB) | peak RSS (MB) | added by generate (MB) | output (MB) | seconds |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_cells']:,} | {r['mode']} | {r['rss_before_mb']} | {r['peak_rss_mb']} "
            f"| {r['added_mb']} | {r['output_mb']} | {r['seconds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; returns the result rows."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-cells", type=int, nargs="+", default=list(DEFAULT_CELLS))
    p.add_argument("--max-nonzero", type=int, default=32, help="Row cap of the model.")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--n-steps", type=int, default=4, help="DDIM steps.")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/generation_memory.json"))
    p.add_argument("--smoke", action="store_true", help="Tiny sizes, seconds.")
    p.add_argument(
        "--fake-nnz",
        type=int,
        default=0,
        help="Skip sampling/decoding: stream random rows with this many non-zeros (measures "
        "the conditions, obs and writer alone, fast; 0 = the real model).",
    )
    p.add_argument(
        "--memory-max", type=int, default=MEMORY_CELLS_MAX, help="Largest in-memory run."
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="stream", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        row = child(args.child, args.n, args.mode, args.batch_size, args.n_steps, args.fake_nnz)
        print(json.dumps(row))
        return []
    if args.smoke:
        args.n_cells, args.batch_size, args.max_nonzero = [200, 400], 100, 16
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        train(model_dir, args.max_nonzero, seed=0)
        rows = []
        for n in args.n_cells:
            modes = ["stream", "memory"] if n <= max(args.memory_max, 400) else ["stream"]
            for mode in modes:
                rows.append(_run_child(model_dir, n, mode, args))
                print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k not in ("child", "n", "mode", "out")}
    config["mode"] = "fake rows (writer only)" if args.fake_nnz else "real model"
    args.out.write_text(json.dumps({"rows": rows, "config": config}, indent=1))
    return rows


if __name__ == "__main__":
    main()
