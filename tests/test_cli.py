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
    stages = summary["stage_seconds"]
    assert list(stages) == ["load", "train", "generate", "evaluate", "save", "figures"]
    assert all(v >= 0 for v in stages.values()) and summary["threads"] >= 1


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


# -- the command line as a tool people script ---------------------------------------------------
def _options(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)
        elif action.option_strings and not isinstance(
            action, argparse._HelpAction | argparse._VersionAction
        ):
            yield parser, action


def test_every_option_has_help_with_its_default():
    for parser, action in _options(build_parser()):
        text = parser._get_formatter()._expand_help(action) if action.help else ""
        assert text, action.option_strings
        assert action.required or "default" in text, (action.option_strings, text)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and sc_sed.__version__ in capsys.readouterr().out


def test_train_out_checked_before_training(tmp_path, capsys, monkeypatch):
    adata = tiny_counts()
    path = tmp_path / "in.h5ad"
    adata.write_h5ad(path)
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(sc_sed.SEDModel, "train", lambda *a, **k: pytest.fail("trained"))
    rc = main(["train", str(path), "--out", str(tmp_path / "model"), "--layer", "counts"])
    err = capsys.readouterr().err
    assert rc == 1 and "already exists" in err and "--overwrite" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--labels", '{"type_0": 3'], "not valid JSON"),
        (["--labels", '{"type_0": -3}'], "JSON object of counts"),
        (["--labels", "nope"], "Unknown 'cell_type'"),
        (["--n-cells", "0"], "n_cells"),
        (["--guidance-scale", "nan"], "guidance_scale"),
    ],
)
def test_generate_errors_are_one_line(model_dir, tmp_path, capsys, extra, match):
    rc = main(["generate", str(model_dir), "--out", str(tmp_path / "x.h5ad"), *extra])
    err = capsys.readouterr().err
    assert rc == 1 and match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5ad").exists()


def test_generate_checks_out_before_loading(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sc_sed.SEDModel, "load", lambda *a, **k: pytest.fail("loaded"))
    (tmp_path / "x.h5ad").write_text("keep")
    assert main(["generate", str(model_dir), "--out", str(tmp_path / "x.h5ad")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "x.h5ad").read_text() == "keep"
    assert main(["generate", str(model_dir), "--out", str(tmp_path / "no" / "x.h5ad")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_generate_is_quiet_and_overwrites_on_request(model_dir, tmp_path, capsys, recwarn):
    import logging

    out = tmp_path / "x.h5ad"
    out.write_text("old")
    args = ["generate", str(model_dir), "--out", str(out), "--n-cells", "3", "--n-steps", "2"]
    root = logging.getLogger()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    root.addHandler(handler)
    try:
        assert main([*args, "--overwrite", "--accelerator", "cpu"]) == 0
    finally:
        root.removeHandler(handler)
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    assert [str(w.message) for w in recwarn if "sparse" not in str(w.message).lower()] == []
    import anndata as ad

    assert ad.read_h5ad(out).n_obs == 3
