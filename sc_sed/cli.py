"""Command line: ``sc-sed demo``, ``sc-sed train``, ``sc-sed generate``, ``sc-sed join``."""

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


class CLIError(Exception):
    """A user error of the command line: printed as one line, exit status 1."""


def _check_train_paths(args: argparse.Namespace) -> None:
    if not Path(args.input).is_file():
        raise CLIError(f"input {args.input!r} is not a file.")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out {args.out!r} already exists; pass --overwrite to replace it.")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {args.out!r} exists and is not a folder.")


#: ``sc-sed train`` options that override the same key of ``--config`` when given.
_TRAIN_FLAGS = {
    "n_latent": "model", "n_hidden": "model", "n_layers": "model", "n_heads": "model",
    "preset": "model", "epochs": "max_epochs", "diffusion_epochs": "diffusion_max_epochs",
    "batch_size": "train", "progress": "enable_progress_bar",
}  # fmt: skip


#: SEDModule arguments the model derives from the registered data (never from a config).
_FROM_DATA = {
    "self", "n_features", "n_conds", "n_cats_per_cond", "allowed_features", "value_sums",
    "detection_rate", "value_vocabulary", "value_vocabulary_counts", "value_max",
}  # fmt: skip


def _config_keys() -> tuple[set[str], set[str]]:
    """Keys a ``--config`` file may hold: (SEDModel and module arguments, train arguments)."""
    import inspect

    from lightning.pytorch import Trainer

    import sc_sed
    from sc_sed.module import SEDModule

    def named(fn, skip=("self",)):
        return {
            n for n, p in inspect.signature(fn).parameters.items()
            if n not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }  # fmt: skip

    model = named(sc_sed.SEDModel.__init__, ("self", "adata", "registry"))
    model |= named(SEDModule.__init__) - _FROM_DATA
    train = named(sc_sed.SEDModel.train) | named(Trainer.__init__)
    return model, train - {"datamodule", "logger", "callbacks", "plugins", "strategy"}


def _read_config(path: str | None) -> tuple[dict, dict]:
    """Split a ``--config`` JSON object into SEDModel and train keyword arguments."""
    if path is None:
        return {}, {}
    try:
        config = json.loads(Path(path).read_text())
    except OSError as err:
        raise CLIError(f"--config {path!r} cannot be read: {err.strerror}.") from err
    except json.JSONDecodeError as err:
        raise CLIError(f"--config {path!r} is not valid JSON ({err.msg}, line {err.lineno}).") from err
    if not isinstance(config, dict):
        raise CLIError(f"--config {path!r} must hold a JSON object of keyword arguments.")
    model_keys, train_keys = _config_keys()
    unknown = sorted(set(config) - model_keys - train_keys)
    if unknown:
        msg = (
            f"--config {path!r}: unknown keys {unknown}. Use SEDModel arguments "
            f"({', '.join(sorted(model_keys))}) or SEDModel.train/Lightning Trainer arguments."
        )
        raise CLIError(msg)
    model = {k: v for k, v in config.items() if k in model_keys}
    return model, {k: v for k, v in config.items() if k not in model_keys}


def _train_kwargs(args: argparse.Namespace) -> tuple[dict, dict]:
    """SEDModel and train keyword arguments: ``--config``, then the flags given on top."""
    model, train = _read_config(args.config)
    for flag, where in _TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if where == "model":
            model[flag] = value
        else:
            train[flag if where == "train" else where] = value
    if args.accelerator != "auto" or "accelerator" not in train:
        train["accelerator"] = args.accelerator
    if args.seed is not None:
        train["seed"] = args.seed
    return model, train


def _train(args: argparse.Namespace) -> int:
    import anndata as ad
    import scvi

    import sc_sed

    _check_train_paths(args)  # before any work: training can take hours
    model_kwargs, train_kwargs = _train_kwargs(args)  # a bad --config fails before loading
    if train_kwargs.get("seed") is not None:
        scvi.settings.seed = train_kwargs["seed"]  # seeds the initial weights too
    adata = ad.read_h5ad(args.input)
    covs = args.covariate or None
    sc_sed.SEDModel.setup_anndata(
        adata,
        layer=args.layer,
        labels_key=args.labels_key,
        batch_key=args.batch_key,
        categorical_covariate_keys=covs,
    )
    model = sc_sed.SEDModel(adata, **model_kwargs)
    model.train(**train_kwargs)
    model.save(args.out, overwrite=args.overwrite)
    print(f"model saved to {Path(args.out).resolve()}")
    return 0


def _parse_labels(text: str | None):
    if text is None:
        return None
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        labels = json.loads(text)
    except json.JSONDecodeError as err:
        msg = f"--labels is not valid JSON ({err.msg} at character {err.pos}): {text!r}."
        raise CLIError(msg) from err
    if not isinstance(labels, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in labels.values()
    ):
        msg = f"--labels must be one category or a JSON object of counts like '{{\"B\": 100}}', got {text!r}."
        raise CLIError(msg)
    return labels


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    i, _, n = text.partition("/")
    try:
        shard = int(i), int(n)
    except ValueError:
        shard = None
    if shard is None or not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        msg = f"--shard must be i/n with 0 <= i < n (e.g. 0/4 for the first of 4), got {text!r}."
        raise CLIError(msg)
    return shard


def _join(args: argparse.Namespace) -> int:
    from sc_sed.data import join_shards

    path = join_shards(args.parts, args.out, overwrite=args.overwrite)
    print(f"{len(args.parts)} shards joined into {Path(path).resolve()}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    import sc_sed
    from sc_sed.model import check_out_path

    if Path(args.out).exists() and not args.overwrite:
        raise CLIError(f"--out {args.out!r} already exists; pass --overwrite to replace it.")
    check_out_path(args.out, args.overwrite)  # before loading and generating
    labels = _parse_labels(args.labels)
    shard = _parse_shard(args.shard)
    model = sc_sed.SEDModel.load(args.model, adata=False, accelerator=args.accelerator)
    n_cells = None if isinstance(labels, dict) else args.n_cells
    path = model.generate(
        n_cells, labels=labels, guidance_scale=args.guidance_scale, sampler=args.sampler,
        n_steps=args.n_steps, seed=args.seed, batch_size=args.batch_size,
        out=args.out, overwrite=args.overwrite, shard=shard,
        enable_progress_bar=True if args.progress is None else args.progress,
    )  # fmt: skip
    n = sum(labels.values()) if isinstance(labels, dict) else args.n_cells
    what = f"{n} rows" if shard is None else f"shard {shard[0]}/{shard[1]} of {n} rows"
    print(f"{what} × {model.module.n_features} features written to {Path(path).resolve()}")
    return 0


class _Formatter(argparse.HelpFormatter):
    """Add ``(default: ...)`` to every option whose help does not state its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = (argparse._HelpAction, argparse._VersionAction)
        if (
            "default" in text
            or action.required
            or not action.option_strings
            or isinstance(action, silent)
        ):
            return text
        return f"{text} (default: %(default)s)"


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


def _progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Show progress bars (default: shown).",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the ``sc-sed`` argument parser."""
    from sc_sed import __version__

    parser = argparse.ArgumentParser(
        prog="sc-sed",
        description="Sparsity-Exploiting Diffusion for sparse AnnData.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"sc-sed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub_kw = {"formatter_class": _Formatter}

    demo = sub.add_parser(
        "demo", help="Train on embedded PBMC counts, generate, evaluate, plot.", **sub_kw
    )
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
    demo.add_argument("--seed", type=int, default=0, help="Seed of the whole run.")
    demo.add_argument(
        "--n-hidden", type=int, default=64, help="Transformer width (default: 64, CPU friendly)."
    )
    demo.add_argument("--no-figures", action="store_true", help="Skip the figures.")
    _common(demo)
    demo.set_defaults(func=_demo)

    train = sub.add_parser("train", help="Train a model on an .h5ad file and save it.", **sub_kw)
    train.add_argument("input", help="Input .h5ad.")
    train.add_argument("--out", required=True, help="Model folder to write (required).")
    train.add_argument("--layer", default=None, help="Layer with the data (default: X).")
    train.add_argument(
        "--labels-key", default=None, help="obs column of labels to condition on (default: none)."
    )
    train.add_argument(
        "--batch-key", default=None, help="obs column of batches to condition on (default: none)."
    )
    train.add_argument(
        "--covariate",
        action="append",
        default=[],
        help="Categorical obs column to condition on (repeatable; default: none).",
    )
    train.add_argument(
        "--epochs", type=int, default=None, help="Autoencoder epochs (default: from the data size)."
    )
    train.add_argument(
        "--diffusion-epochs",
        type=int,
        default=None,
        help="Diffusion epochs (default: from the data size).",
    )
    train.add_argument(
        "--batch-size", type=int, default=None, help="Autoencoder minibatch size (default: recipe)."
    )
    for name, what in (
        ("--n-latent", "Latent size"), ("--n-hidden", "Transformer width"),
        ("--n-layers", "Transformer layers (encoder and decoder)"),
        ("--n-heads", "Attention heads"),
    ):  # fmt: skip
        train.add_argument(name, type=int, default=None, help=f"{what} (default: recipe).")
    train.add_argument(
        "--preset",
        choices=["auto", "cpu", "gpu"],
        default=None,
        help="Recipe of sizes and budgets chosen from the data (default: auto, by the device).",
    )
    train.add_argument(
        "--config",
        default=None,
        metavar="FILE.json",
        help="JSON object of SEDModel and SEDModel.train keyword arguments, e.g. "
        '\'{"n_layers": 2, "max_epochs": 40}\'; the options above override it (default: none).',
    )
    _progress(train)
    train.add_argument(
        "--seed",
        type=int,
        default=None,
        help="Seed of the initial weights, data split and training (default: unseeded).",
    )
    train.add_argument("--overwrite", action="store_true", help="Replace an existing --out folder.")
    _common(train)
    train.set_defaults(func=_train)

    gen = sub.add_parser(
        "generate", help="Generate rows from a saved model into an .h5ad file.", **sub_kw
    )
    gen.add_argument("model", help="Model folder written by `sc-sed train`.")
    gen.add_argument(
        "--out",
        required=True,
        help="Output .h5ad or .zarr (required); rows are streamed to it batch by batch.",
    )
    gen.add_argument("--n-cells", type=int, default=1000, help="Rows to generate.")
    gen.add_argument(
        "--labels",
        default=None,
        help='One category, or JSON counts like \'{"B": 100, "T": 50}\' (default: training mix).',
    )
    gen.add_argument(
        "--guidance-scale", type=float, default=1.0, help="Classifier-free guidance weight (>= 0)."
    )
    gen.add_argument(
        "--sampler", choices=["ddim", "ddpm"], default="ddim", help="Diffusion sampler."
    )
    gen.add_argument("--n-steps", type=int, default=50, help="Diffusion sampling steps.")
    gen.add_argument("--batch-size", type=int, default=256, help="Rows generated together.")
    gen.add_argument("--seed", type=int, default=0, help="Seed of every random draw.")
    gen.add_argument(
        "--shard",
        default=None,
        help="i/n: write only shard i of n (0-based) of the rows; join them with `sc-sed join` "
        "(default: all rows).",
    )
    gen.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace an existing --out .h5ad file or a .zarr store sc_sed wrote (never "
        "another folder).",
    )
    _progress(gen)
    _common(gen)
    gen.set_defaults(func=_generate)

    join = sub.add_parser(
        "join",
        help="Join the shard files of `sc-sed generate --shard i/n` into one file.",
        **sub_kw,
    )
    join.add_argument("parts", nargs="+", help="The shard files (.h5ad or .zarr), any order.")
    join.add_argument("--out", required=True, help="Joined .h5ad or .zarr file (required).")
    join.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace an existing --out .h5ad file or a .zarr store sc_sed wrote (never a shard "
        "or another folder).",
    )
    join.set_defaults(func=_join, threads=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sc-sed`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}.")
    from ._threads import apply_threads

    apply_threads(args.threads)
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, KeyError, OSError, RuntimeError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"sc-sed {args.command}: error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
