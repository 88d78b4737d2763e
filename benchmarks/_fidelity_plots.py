"""Figures of the fidelity report (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _fidelity_stats import csr, detected_genes, detection_rate, gene_means, library_size


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _x(adata, layer):
    return csr(adata.X if layer is None else adata.layers[layer])


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path.name


def distributions(sets: dict[str, Any], out: Path) -> str:
    """Histograms of library size and detected genes per cell (log scale)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (fn, name) in zip(
        axes, ((library_size, "library size"), (detected_genes, "detected genes")), strict=True
    ):
        values = {k: np.log10(1 + fn(x)) for k, x in sets.items()}
        lo = min(v.min() for v in values.values())
        hi = max(v.max() for v in values.values())
        bins = np.linspace(lo, hi, 40)
        for k, v in values.items():
            ax.hist(v, bins=bins, histtype="step", density=True, label=k, lw=1.5)
        ax.set_xlabel(f"log10(1 + {name})")
        ax.legend(fontsize=8)
    return _save(fig, out / "cell_size_distributions.png")


def genes(sets: dict[str, Any], out: Path) -> str:
    """Per-gene mean and detection rate of each method against the held-out cells."""
    plt = _plt()
    real = sets["real (held-out)"]
    others = [k for k in sets if k != "real (held-out)"]
    fig, axes = plt.subplots(2, len(others), figsize=(3.6 * len(others), 7), squeeze=False)
    for j, k in enumerate(others):
        for i, (fn, name) in enumerate(
            ((gene_means, "mean count"), (detection_rate, "detection rate"))
        ):
            a, b = fn(real), fn(sets[k])
            ax = axes[i, j]
            ax.scatter(np.log10(1e-4 + a), np.log10(1e-4 + b), s=1, alpha=0.3)
            lim = [np.log10(1e-4), max(np.log10(1e-4 + a).max(), np.log10(1e-4 + b).max())]
            ax.plot(lim, lim, "k--", lw=0.8)
            ax.set_title(k, fontsize=9)
            ax.set_xlabel(f"log10 real {name}", fontsize=8)
            ax.set_ylabel(f"log10 generated {name}", fontsize=8)
    return _save(fig, out / "gene_agreement.png")


def latent(diag: dict[str, Any], out: Path) -> str:
    """Detected genes of decodes from the own latent vs a same-label latent."""
    plt = _plt()
    sc = diag["latent_carry"]["_scatter"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    src = np.asarray(sc["source_detected"])
    ax.scatter(src, sc["own_detected"], s=6, label="own latent")
    ax.scatter(src, sc["same_label_detected"], s=6, label="same-label latent")
    hi = max(src.max(), max(sc["own_detected"]), max(sc["same_label_detected"]))
    ax.plot([0, hi], [0, hi], "k--", lw=0.8)
    ax.set_xlabel("detected genes of the source cell")
    ax.set_ylabel("detected genes of the decoded cell")
    ax.legend(fontsize=8)
    return _save(fig, out / "latent_carry.png")


def exposure(diag: dict[str, Any], out: Path) -> str:
    """P(END) and emitted feature id per step, teacher-forced vs free-running; lengths."""
    plt = _plt()
    e = diag["exposure"]
    edges = np.asarray(e["step_edges"])
    mid = 0.5 * (edges[:-1] + edges[1:])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for key, label in (("curves_teacher_forced", "teacher-forced (real rows)"),
                       ("curves_free_running", "free-running (own rows)")):  # fmt: skip
        c = e[key]
        for ax, stat in zip(axes[:2], ("p_end", "feature_id"), strict=True):
            y = np.array([np.nan if v is None else v for v in c[stat]])
            ax.plot(mid, y, marker="o", ms=3, label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("mean P(END) before the row's end")
    axes[1].set_ylabel("mean emitted feature id")
    for ax in axes[:2]:
        ax.set_xlabel("step (pairs emitted)")
        ax.legend(fontsize=8)
    lens = e["_lengths"]
    axes[2].scatter(lens["real"], lens["free_running"], s=6)
    hi = max(max(lens["real"]), max(lens["free_running"]))
    axes[2].plot([0, hi], [0, hi], "k--", lw=0.8)
    axes[2].set_xlabel("real row length")
    axes[2].set_ylabel("free-running length (own latent)")
    return _save(fig, out / "exposure_bias.png")


def figures(heldout, ref, runs: dict, diag: dict | None, layer: str | None, out: Path) -> list[str]:
    """Write every figure into ``out``; returns the file names."""
    sets = {"real (held-out)": _x(heldout, layer), "real (train)": _x(ref, layer)}
    sets.update({k: _x(r.synth, layer) for k, r in runs.items()})
    written = [distributions(sets, out), genes(sets, out)]
    if diag is not None:
        written += [latent(diag, out), exposure(diag, out)]
    return written
