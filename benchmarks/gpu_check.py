"""GPU smoke check: SED trains and generates on CUDA, also in bf16 mixed precision.

Run on a machine with a GPU::

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json

It trains a small conditional SED on the embedded PBMC counts with ``accelerator="gpu"``
in full and in ``bf16-mixed`` precision, generates cells, checks the output contract
(CSR, exact zeros, strictly increasing indices, integer counts, requested labels,
seed reproducibility on the device) and prints timings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import sc_sed


def _check_output(synth, adata, labels: dict) -> dict:
    x = synth.X
    rows_ok = all(
        (np.diff(x.indices[x.indptr[r] : x.indptr[r + 1]]) > 0).all() for r in range(x.shape[0])
    )
    return {
        "csr": type(x).__name__,
        "increasing_indices": bool(rows_ok),
        "integer_values": bool(np.array_equal(x.data, np.round(x.data)) and (x.data >= 1).all()),
        "labels_honoured": {k: v for k, v in synth.obs["bulk_labels"].value_counts().items() if v}
        == labels,
        "zero_fraction_synth": float(1 - x.nnz / np.prod(x.shape)),
        "zero_fraction_real": float(1 - adata.X.nnz / np.prod(adata.shape)),
    }


def run(precision: str, epochs: int, diffusion_epochs: int) -> dict:
    """Train and generate on the GPU with one precision setting; return a report."""
    adata = sc_sed.datasets.pbmc68k_counts()
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="bulk_labels")
    model = sc_sed.SEDModel(adata, n_hidden=128, n_ff=256, n_layers=2, n_latent=64)
    start = time.time()
    model.train(
        epochs,
        diffusion_epochs,
        accelerator="gpu",
        devices=1,
        precision=precision,
        enable_progress_bar=False,
    )
    train_s = time.time() - start
    labels = {"CD14+ Monocyte": 100, "CD19+ B": 100}
    start = time.time()
    synth = model.generate(None, labels=labels, seed=1, progress_bar=False)
    gen_s = time.time() - start
    again = model.generate(None, labels=labels, seed=1, progress_bar=False)
    report = _check_output(synth, adata, labels)
    report.update(
        precision=precision,
        device=str(model.device),
        train_seconds=round(train_s, 1),
        generate_seconds=round(gen_s, 2),
        same_seed_identical=bool((synth.X != again.X).nnz == 0),
        final_train_loss=float(model.history["train_loss"].iloc[-1, 0]),
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--diffusion-epochs", type=int, default=20)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    reports = [run(p, args.epochs, args.diffusion_epochs) for p in ("32-true", "bf16-mixed")]
    for r in reports:
        print(json.dumps(r))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"gpu": torch.cuda.get_device_name(), "runs": reports}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
