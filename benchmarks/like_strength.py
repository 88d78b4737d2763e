"""How far ``generate(like=..., strength=s)`` moves cells, and whether they keep their type.

Protocol (PBMC 68k counts, layer ``counts``, labels ``bulk_labels``): a stratified quarter
of the cells is held out; a small SED model is trained briefly on the rest. The held-out
cells are the templates: for each strength ``s`` one new cell per template is generated
(``like=heldout``, the templates' own labels, DDIM, guidance 1). All distances are in the
space of 30 principal components of the log-normalised (``normalize_total`` 1e4 +
``log1p``) training cells.

Per strength:

* ``label_agreement``: a kNN classifier (k=15) trained on the real training cells labels
  the generated cells; the share agreeing with their template's label. The same classifier
  on the templates themselves (``real held-out``) is the reference.
* ``to_template``: mean distance of a generated cell to its template, over ``d_nn``, the
  median distance from a held-out real cell to its nearest training cell (so 1 is "as far
  as a typical neighbouring real cell").
* ``to_train``: median distance of a generated cell to its nearest training cell, over
  ``d_nn`` (well below 1 means copying training cells; the held-out real cells give 1).

``reconstruct`` (encode and decode, no diffusion) shows how far the decoder's sampling
alone moves a cell.

Usage::

    python benchmarks/like_strength.py            # ~3-5 minutes on 1 CPU thread
    python benchmarks/like_strength.py --smoke    # ~1 minute, tiny model, not for reading
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import torch
from _common import environment
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

import sc_sed

STRENGTHS = (0.1, 0.25, 0.5, 0.75, 1.0)
SUMMARIES = Path(__file__).resolve().parent / "summaries"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny model and data (a test run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ae-epochs", type=int, default=12)
    p.add_argument("--diffusion-epochs", type=int, default=150)
    p.add_argument("--n-steps", type=int, default=50)
    p.add_argument("--strengths", type=float, nargs="+", default=list(STRENGTHS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--summary-dir", default=str(SUMMARIES))
    return p.parse_args(argv)


def split(adata, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out row positions (at least one held-out cell per label)."""
    rng = np.random.default_rng(seed)
    held = []
    for _, rows in adata.obs.groupby("bulk_labels", observed=True).indices.items():
        rows = rng.permutation(rows)
        held.extend(rows[: max(1, round(frac * rows.size))])
    held = np.sort(held)
    return np.setdiff1d(np.arange(adata.n_obs), held), held


class Space:
    """PCA of log-normalised training cells; kNN labels; nearest-training-cell distances."""

    def __init__(self, train, labels: np.ndarray, n_pcs: int = 30):
        x = self._lognorm(train)
        self.mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.components = vt[: min(n_pcs, vt.shape[0])].T
        self.train_pcs = self.project(train)
        self.knn = KNeighborsClassifier(15).fit(self.train_pcs, labels)
        self.nn = NearestNeighbors(n_neighbors=1).fit(self.train_pcs)

    @staticmethod
    def _lognorm(adata) -> np.ndarray:
        a = sc.AnnData(adata.layers["counts"].copy() if "counts" in adata.layers else adata.X)
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        x = a.X
        return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)

    def project(self, adata) -> np.ndarray:
        """Principal-component scores of the rows of ``adata``."""
        return (self._lognorm(adata) - self.mean) @ self.components

    def to_train(self, pcs: np.ndarray) -> np.ndarray:
        """Distance of each row to its nearest training cell."""
        return self.nn.kneighbors(pcs)[0][:, 0]


def train_model(train, args) -> sc_sed.SEDModel:
    """A small SED model, trained briefly."""
    sizes = {"n_latent": 32, "n_hidden": 64, "n_layers": 1, "n_heads": 4, "n_ff": 128}
    if args.smoke:
        sizes = {"n_latent": 8, "n_hidden": 32, "n_layers": 1, "n_heads": 2, "n_ff": 64}
    sc_sed.SEDModel.setup_anndata(train, layer="counts", labels_key="bulk_labels")
    model = sc_sed.SEDModel(train, denoiser_widths=(256, 256, 128), **sizes)
    model.train(
        max_epochs=args.ae_epochs, diffusion_max_epochs=args.diffusion_epochs, batch_size=8,
        enable_progress_bar=False,
    )  # fmt: skip
    return model


def score(space: Space, pcs: np.ndarray, template_pcs, labels, d_nn: float) -> dict:
    """Label agreement with the templates, distance to them and to the training cells."""
    return {
        "label_agreement": float((space.knn.predict(pcs) == labels).mean()),
        "to_template": float(np.linalg.norm(pcs - template_pcs, axis=1).mean() / d_nn),
        "to_train": float(np.median(space.to_train(pcs)) / d_nn),
    }


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """Run the benchmark; print and write its table."""
    args = parse_args(argv)
    if args.smoke:
        args.ae_epochs, args.diffusion_epochs, args.n_steps = 1, 2, 5
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> pd.DataFrame:
    adata = sc_sed.datasets.pbmc68k_counts()
    if args.smoke:
        adata = adata[np.random.default_rng(0).choice(adata.n_obs, 160, replace=False)].copy()
    train_rows, held_rows = split(adata, 0.25, args.seed)
    train, held = adata[train_rows].copy(), adata[held_rows].copy()
    labels = held.obs["bulk_labels"].astype(str).to_numpy()
    start = time.perf_counter()
    model = train_model(train, args)
    train_s = time.perf_counter() - start
    space = Space(train, train.obs["bulk_labels"].astype(str).to_numpy())
    held_pcs = space.project(held)
    d_nn = float(np.median(space.to_train(held_pcs)))
    rows = {"real held-out": score(space, held_pcs, held_pcs, labels, d_nn)}
    rec = model.reconstruct(held, seed=args.seed)
    rows["reconstruct"] = score(space, space.project(rec), held_pcs, labels, d_nn)
    for s in args.strengths:
        out = model.generate(
            like=held, strength=s, n_steps=args.n_steps, seed=args.seed, progress_bar=False
        )
        assert (out.obs["template"].to_numpy() == held.obs_names.to_numpy()).all()
        rows[f"strength {s:g}"] = score(space, space.project(out), held_pcs, labels, d_nn)
    table = pd.DataFrame(rows).T
    print(table.round(3).to_string())
    _write(args, table, train_s, d_nn, train.n_obs, held.n_obs)
    return table


def _write(args, table: pd.DataFrame, train_s: float, d_nn: float, n_train: int, n_held: int):
    out = Path(args.summary_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = ("smoke_" if args.smoke else "") + "pbmc68k_like_strength"
    payload = {
        "benchmark": "like_strength",
        "data": "pbmc68k_counts (layer counts, labels bulk_labels)",
        "n_train": n_train, "n_templates": n_held, "seed": args.seed,
        "ae_epochs": args.ae_epochs, "diffusion_epochs": args.diffusion_epochs,
        "n_steps": args.n_steps, "threads": args.threads, "train_seconds": round(train_s, 1),
        "commit": _commit(), "environment": environment(torch.device("cpu")),
        "d_nn": d_nn, "rows": {k: v.to_dict() for k, v in table.iterrows()},
    }  # fmt: skip
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = table.round(3).to_markdown() if _has_tabulate() else table.round(3).to_string()
    (out / f"{name}.md").write_text(f"# generate(like=...) by strength (PBMC 68k)\n\n{md}\n")


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
