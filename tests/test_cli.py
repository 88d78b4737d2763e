import numpy as np
import pytest

import sc_sed
from sc_sed._demo import overall_metrics, stratified_split
from sc_sed.cli import build_parser, main

from .model.conftest import tiny_counts


def test_parser_has_the_three_commands():
    parser = build_parser()
    assert parser.parse_args(["demo", "--epochs", "2"]).epochs == 2
    assert parser.parse_args(["train", "x.h5ad", "--out", "m"]).input == "x.h5ad"
    assert parser.parse_args(["generate", "m", "--out", "s.h5ad"]).n_cells == 1000
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_stratified_split_keeps_every_label():
    labels = np.array(["a"] * 20 + ["b"] * 5 + ["c"] * 1)
    import pandas as pd

    train, held = stratified_split(pd.Series(labels), 0.2, seed=0)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == 26
    assert set(labels[held]) == {"a", "b", "c"}
    assert (labels[held] == "a").sum() == 4


def test_train_then_generate_pipeline(tmp_path):
    adata = tiny_counts()
    path = tmp_path / "in.h5ad"
    adata.write_h5ad(path)
    model_dir = tmp_path / "model"
    rc = main([
        "train", str(path), "--out", str(model_dir), "--layer", "counts", "--labels-key", "cell_type",
        "--epochs", "1", "--diffusion-epochs", "1", "--n-hidden", "16", "--n-latent", "4",
        "--accelerator", "cpu",
    ])  # fmt: skip
    assert rc == 0 and (model_dir / "sc_sed_model.json").exists()
    out = tmp_path / "synth.h5ad"
    label = str(adata.obs["cell_type"].cat.categories[0])
    assert (
        main(
            [
                "generate",
                str(model_dir),
                "--out",
                str(out),
                "--labels",
                f'{{"{label}": 4}}',
                "--n-steps",
                "3",
            ]
        )
        == 0
    )
    import anndata as ad

    synth = ad.read_h5ad(out)
    assert synth.n_obs == 4 and (synth.obs["cell_type"] == label).all()
    assert list(synth.var_names) == list(adata.var_names)


def test_overall_metrics_picks_group_all():
    import pandas as pd

    df = pd.DataFrame(
        {"metric": ["scc", "scc", "mmd"], "group": ["all", "x", "all"], "value": [0.9, 0.1, 0.2]}
    )
    assert overall_metrics(df) == {"scc": 0.9, "mmd": 0.2}
    assert sc_sed.__version__


def test_demo_job_writes_every_output(tmp_path):
    from sc_sed._demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=tmp_path / "demo", max_epochs=1, diffusion_max_epochs=1, n_hidden=16, n_latent=4,
        n_steps=2, accelerator="cpu",
    )  # fmt: skip
    metrics = run_demo(cfg)
    for name in (
        "synthetic.h5ad",
        "metrics.csv",
        "summary.json",
        "dropout_pattern.png",
        "umap.png",
        "genes_detected.png",
    ):
        assert (cfg.out / name).exists(), name
    assert (cfg.out / "model" / "sc_sed_model.json").exists()
    import json

    summary = json.loads((cfg.out / "summary.json").read_text())
    assert summary["n_generated"] == summary["n_heldout"]
    assert summary["metrics"]["n_spurious_features"] == 0
    assert {"scc", "mmd", "zero_fraction_synth"} <= set(metrics["metric"])


def test_demo_is_reproducible_for_a_seed(tmp_path):
    import anndata as ad
    import torch

    from sc_sed._demo import DemoConfig, run_demo

    def run(name, seed):
        cfg = DemoConfig(
            out=tmp_path / name, max_epochs=1, diffusion_max_epochs=1, n_hidden=16, n_latent=4,
            n_steps=2, accelerator="cpu", figures=False, seed=seed,
        )  # fmt: skip
        run_demo(cfg)
        return ad.read_h5ad(cfg.out / "synthetic.h5ad").X

    first = run("a", 0)
    torch.manual_seed(1234)  # global state in between must not matter: the demo seeds itself
    again, other = run("b", 0), run("c", 1)
    assert (first != again).nnz == 0
    assert first.shape != other.shape or (first != other).nnz > 0
