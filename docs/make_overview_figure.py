"""Draw docs/_static/sed_overview.svg: a sparse row -> set -> latent diffusion -> AR decoder.

Run ``python docs/make_overview_figure.py`` after changing it; the SVG is committed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent / "_static" / "sed_overview.svg"
ROW = [0, 3, 0, 0, 1, 0, 0, 0, 7, 0, 0, 2, 0, 0]  # a sparse row: 4 non-zeros of 14


def box(ax, x, y, w, h, text, color, size=9):
    """Draw a rounded box with centred text."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color, ec="0.25", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def arrow(ax, x0, y0, x1, y1, text="", dy=0.12):
    """Draw an arrow, optionally labelled above its middle."""
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12,
                                 lw=1.2, color="0.25"))
    if text:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + dy, text, ha="center", va="bottom", fontsize=7.5,
                color="0.3")


def main() -> None:
    """Draw the figure and write the SVG."""
    plt.rcParams["svg.fonttype"] = "none"  # keep text as text: small, searchable SVG
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set(xlim=(0, 11), ylim=(-0.35, 3.3))
    ax.axis("off")

    # a sparse row; zeros pale
    for i, v in enumerate(ROW):
        ax.add_patch(plt.Rectangle((0.2 + i * 0.16, 2.35), 0.15, 0.3,
                                   fc="#3b75af" if v else "#e8e8e8", ec="white"))
    ax.text(1.3, 2.8, "sparse row, D features", ha="center", fontsize=9)
    ax.text(1.3, 2.05, "only the non-zeros matter", ha="center", fontsize=7.5, color="0.35")

    pairs = [(i, v) for i, v in enumerate(ROW) if v]
    box(ax, 0.35, 0.75, 1.9, 0.9, "set of pairs\n" + " ".join(f"({i},{v})" for i, v in pairs),
        "#dbe8f5", size=8)
    arrow(ax, 1.3, 2.0, 1.3, 1.7)

    box(ax, 2.9, 0.75, 1.7, 0.9, "set encoder\n(Transformer,\nno positions)", "#f6e3c7", size=8)
    arrow(ax, 2.3, 1.2, 2.9, 1.2)
    box(ax, 5.2, 0.75, 0.8, 0.9, "latent\nz", "#fff2a8")
    arrow(ax, 4.6, 1.2, 5.2, 1.2)

    box(ax, 4.55, 2.2, 2.1, 0.75, "latent diffusion\n(MLP U-Net, DDIM/DDPM)", "#e3d7f0", size=8)
    ax.add_patch(FancyArrowPatch((5.45, 2.2), (5.45, 1.68), arrowstyle="<|-|>",
                                 mutation_scale=12, lw=1.2, color="0.25"))
    ax.text(5.55, 1.85, "learn z / sample z", fontsize=7.5, color="0.3", va="center")

    box(ax, 6.7, 0.75, 2.0, 0.9, "autoregressive decoder\nnext index ↑, then value\n"
        "(KV cache)", "#d5ecd4", size=8)
    arrow(ax, 6.0, 1.2, 6.7, 1.2)
    box(ax, 9.3, 0.75, 1.5, 0.9, "START (1,3) (4,1)\n(8,7) (11,2) END", "#dbe8f5", size=8)
    arrow(ax, 8.7, 1.2, 9.3, 1.2)
    ax.text(10.05, 0.45, "everything not emitted\nis an exact zero", ha="center", va="top",
            fontsize=7.5, color="0.3")
    ax.text(5.6, -0.3, "training: encoder + decoder first, then diffusion on the frozen encoder's "
            "means    •    generation: sample z, decode pairs, scatter into CSR",
            ha="center", fontsize=7.5, color="0.35")
    fig.savefig(OUT, bbox_inches="tight", metadata={"Date": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
