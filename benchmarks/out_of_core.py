"""Peak resident memory of training from a backed on-disk matrix vs the same matrix in memory.

For each ``--rows`` value, writes a random CSR count matrix (rows × ``--features``, ``--nnz``
non-zeros per row on average) to an ``.h5ad`` file; then, in a fresh process per mode, warms
up (imports and a short training run on a tiny in-memory matrix, so that code and framework
memory are in the baseline), registers the file's matrix (``backed="r"`` or loaded into
memory) and trains the autoencoder stage for ``--steps`` minibatches. It prints one JSON
line per matrix and per mode: the process's RSS after the warm-up (``baseline_mib``), its
peak while registering (``setup_peak_mib``) and training (``peak_mib``), and the peak above the
baseline (``above_baseline_mib``). Peaks come from Linux's ``VmHWM``, reset after the
warm-up; elsewhere the process's ``ru_maxrss`` is reported (warm-up included).

Example (the numbers in ``benchmarks/README.md``)::

    OMP_NUM_THREADS=1 python benchmarks/out_of_core.py --rows 10000 100000 1000000 \
        --features 20000 --nnz 100
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_matrix(path: Path, n_rows: int, n_features: int, nnz: int, seed: int = 0) -> int:
    """Write a random integer CSR matrix to ``path`` in row chunks; return its bytes in memory."""
    import anndata as ad
    import h5py
    import scipy.sparse as sp
    from anndata.io import sparse_dataset

    rng = np.random.default_rng(seed)
    chunk, total = 20_000, 0
    for start in range(0, n_rows, chunk):
        rows = min(chunk, n_rows - start)
        x = sp.random(rows, n_features, density=nnz / n_features, format="csr", rng=rng,
                      data_rvs=lambda k: rng.integers(1, 20, k)).astype(np.float32)  # fmt: skip
        total += x.data.nbytes + x.indices.nbytes + x.indptr.nbytes
        if start == 0:
            ad.AnnData(sp.csr_matrix((n_rows, n_features), dtype=np.float32)).write_h5ad(path)
            with h5py.File(path, "a") as f:
                del f["X"]
                ad.io.write_elem(f, "X", x)
        else:
            with h5py.File(path, "a") as f:
                sparse_dataset(f["X"]).append(x)
    return total


def _rss() -> dict[str, float]:
    """Current and peak RSS in MiB (``VmRSS``/``VmHWM``; ``ru_maxrss`` without ``/proc``)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"VmRSS": peak, "VmHWM": peak}


def _reset_peak() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux); a no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _train(adata, steps: int, batch_size: int) -> None:
    import sc_sed

    sc_sed.SEDModel.setup_anndata(adata)
    model = sc_sed.SEDModel(adata, n_latent=8, n_hidden=32, n_layers=1, n_heads=2, n_ff=64)
    model.train_autoencoder(
        max_epochs=1, max_steps=steps, batch_size=batch_size, limit_val_batches=0,
        enable_progress_bar=False, enable_checkpointing=False, logger=False,
    )  # fmt: skip


def child(path: str, mode: str, steps: int, batch_size: int) -> dict:
    """Warm up, then register and train on the file in this process; return RSS figures in MiB."""
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    tiny = sp.random(256, 50, density=0.2, format="csr", rng=rng, dtype=np.float32)
    tiny.data = np.ceil(tiny.data * 10)
    _train(ad.AnnData(tiny), 2, 64)
    baseline = _rss()["VmRSS"]
    _reset_peak()
    adata = ad.read_h5ad(path, backed="r" if mode == "backed" else None)
    import sc_sed

    sc_sed.SEDModel.setup_anndata(adata)
    setup_peak = _rss()["VmHWM"]
    _train(adata, steps, batch_size)
    peak = _rss()["VmHWM"]
    return {"mode": mode, "baseline_mib": round(baseline), "setup_peak_mib": round(setup_peak),
            "peak_mib": round(peak), "above_baseline_mib": round(peak - baseline)}  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark, print one JSON line per matrix and per mode, and return them."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--features", type=int, default=20_000)
    p.add_argument("--nnz", type=int, default=100)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--modes", nargs="+", choices=["backed", "memory"], default=["backed", "memory"])
    p.add_argument("--child", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.steps, args.batch_size)))
        return []
    lines = []
    for n_rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "matrix.h5ad"
            size = write_matrix(path, n_rows, args.features, args.nnz)
            lines.append({"rows": n_rows, "features": args.features, "nnz_per_row": args.nnz,
                          "matrix_mib": round(size / 2**20, 3),
                          "file_mib": round(path.stat().st_size / 2**20, 3)})  # fmt: skip
            print(json.dumps(lines[-1]), flush=True)
            for mode in args.modes:
                cmd = [sys.executable, __file__, "--child", str(path), mode,
                       "--steps", str(args.steps), "--batch-size", str(args.batch_size)]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                lines.append({"rows": n_rows, **json.loads(out.stdout.strip().splitlines()[-1])})
                print(json.dumps(lines[-1]), flush=True)
    return lines


if __name__ == "__main__":
    main()
