"""Command line: ``sc-sed demo``, ``sc-sed train``, ``sc-sed generate``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from ._demo import DemoConfig, overall_metrics, run_demo

    cfg = DemoConfig(
        out=Path(args.out),
        max_epochs=args.epochs,
        diffusion_max_epochs=args.diffusion_epochs,
        accelerator=args.accelerator,
        seed=args.seed,
        n_hidden=args.n_hidden,
        figures=not args.no_figures,
        threads=args.threads,
    )
    metrics = run_demo(cfg)
    summary = json.loads((cfg.out / "summary.json").read_text())
    print(
        f"\nsc_sed demo — PBMC 68k counts, {summary['n_train']} training cells, "
        f"{summary['n_generated']} generated vs {summary['n_heldout']} held-out cells"
    )
    print(
        f"trained in {summary['train_seconds']} s, generated in {summary['generate_seconds']} s on {summary['device']}"
    )
    stages = ", ".join(f"{k} {v} s" for k, v in summary["stage_seconds"].items())
    print(f"stages ({summary['threads']} CPU thread(s)): {stages}")
    for name, value in overall_metrics(metrics).items():
        print(f"  {name:<26s} {value:10.4f}")
    print(
        f"outputs in {cfg.out.resolve()}: synthetic.h5ad, metrics.csv, summary.json, model/, "
        + ", ".join(summary["figures"])
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    import anndata as ad

    import sc_sed

    adata = ad.read_h5ad(args.input)
    covs = args.covariate or None
    sc_sed.SEDModel.setup_anndata(
        adata,
        layer=args.layer,
        labels_key=args.labels_key,
        batch_key=args.batch_key,
        categorical_covariate_keys=covs,
    )
    model = sc_sed.SEDModel(
        adata, n_hidden=args.n_hidden, n_ff=2 * args.n_hidden, n_latent=args.n_latent
    )
    model.train(args.epochs, args.diffusion_epochs, accelerator=args.accelerator)
    model.save(args.out, overwrite=args.overwrite)
    print(f"model saved to {Path(args.out).resolve()}")
    return 0


def _parse_labels(text: str | None):
    if text is None:
        return None
    if text.startswith("{"):
        return json.loads(text)
    return text


def _generate(args: argparse.Namespace) -> int:
    import sc_sed

    model = sc_sed.SEDModel.load(args.model, accelerator=args.accelerator)
    labels = _parse_labels(args.labels)
    n_cells = None if isinstance(labels, dict) else args.n_cells
    synth = model.generate(
        n_cells, labels=labels, guidance_scale=args.guidance_scale, sampler=args.sampler,
        n_steps=args.n_steps, seed=args.seed, batch_size=args.batch_size,
    )  # fmt: skip
    synth.write_h5ad(args.out)
    print(f"{synth.n_obs} rows × {synth.n_vars} features written to {Path(args.out).resolve()}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accelerator",
        default="auto",
        help="Lightning accelerator: auto, cpu, gpu (default: auto).",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the physical cores "
        "not busy with other work, 1 per process under DDP).",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the ``sc-sed`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sc-sed", description="Sparsity-Exploiting Diffusion for sparse AnnData."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="Train on embedded PBMC counts, generate, evaluate, plot.")
    demo.add_argument("--out", default="sc_sed_demo", help="Output folder (default: sc_sed_demo).")
    demo.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="Autoencoder epochs (default: 60 on a CPU, from the data size on a GPU).",
    )
    demo.add_argument(
        "--diffusion-epochs",
        type=int,
        default=None,
        help="Diffusion epochs (default: 100 on a CPU, from the data size on a GPU).",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--n-hidden", type=int, default=64, help="Transformer width (default: 64, CPU friendly)."
    )
    demo.add_argument("--no-figures", action="store_true", help="Skip the figures.")
    _common(demo)
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", help="Train a model on an .h5ad file and save it.")
    train.add_argument("input", help="Input .h5ad.")
    train.add_argument("--out", required=True, help="Model folder to write.")
    train.add_argument("--layer", default=None, help="Layer with the data (default: X).")
    train.add_argument("--labels-key", default=None)
    train.add_argument("--batch-key", default=None)
    train.add_argument(
        "--covariate", action="append", default=[], help="Categorical obs column (repeatable)."
    )
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--diffusion-epochs", type=int, default=None)
    train.add_argument("--n-hidden", type=int, default=128)
    train.add_argument("--n-latent", type=int, default=64)
    train.add_argument("--overwrite", action="store_true")
    _common(train)
    train.set_defaults(func=_train)

    gen = sub.add_parser("generate", help="Generate rows from a saved model into an .h5ad file.")
    gen.add_argument("model", help="Model folder written by `sc-sed train`.")
    gen.add_argument("--out", required=True, help="Output .h5ad.")
    gen.add_argument("--n-cells", type=int, default=1000)
    gen.add_argument(
        "--labels", default=None, help='One category, or JSON counts like \'{"B": 100, "T": 50}\'.'
    )
    gen.add_argument("--guidance-scale", type=float, default=1.0)
    gen.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    gen.add_argument("--n-steps", type=int, default=50)
    gen.add_argument("--batch-size", type=int, default=256)
    gen.add_argument("--seed", type=int, default=0)
    _common(gen)
    gen.set_defaults(func=_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sc-sed`` console script."""
    args = build_parser().parse_args(argv)
    from ._threads import apply_threads

    apply_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
