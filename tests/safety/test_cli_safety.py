"""`sc-sed generate` and `sc-sed join` keep the same output rules as the Python API."""

from __future__ import annotations

import anndata as ad

from sc_sed.cli import main

COMMON = ["--n-steps", "2", "--seed", "3", "--accelerator", "cpu"]


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err
    return err


def test_generate_overwrite_refuses_a_user_folder(model_dir, tmp_path, capsys, tree):
    user = tmp_path / "results.h5ad"
    user.mkdir()
    (user / "mine.txt").write_text("keep me")
    rc = main(["generate", str(model_dir), "--out", str(user), "--overwrite", *COMMON])
    assert rc == 1
    _one_line_error(capsys, "did not write")
    assert tree(user) == {".": None, "mine.txt": b"keep me"}


def test_join_refuses_an_out_that_is_a_shard(model_dir, tmp_path, capsys, tree):
    parts = [str(tmp_path / f"s{i}.h5ad") for i in range(2)]
    for i, part in enumerate(parts):
        args = ["--n-cells", "4", "--batch-size", "2", "--shard", f"{i}/2", *COMMON]
        assert main(["generate", str(model_dir), "--out", part, *args]) == 0
    before = [tree(p) for p in parts]
    capsys.readouterr()
    assert main(["join", *parts, "--out", parts[0], "--overwrite"]) == 1
    _one_line_error(capsys, "one of the shard files")
    assert [tree(p) for p in parts] == before


def test_empty_shards_join_to_the_unsharded_file(model_dir, tmp_path, capsys):
    one = tmp_path / "one.h5ad"
    assert main(["generate", str(model_dir), "--out", str(one), "--n-cells", "5", *COMMON]) == 0
    parts = [str(tmp_path / f"p{i}.h5ad") for i in range(3)]
    for i, part in enumerate(parts):  # default batch size: one seed block, two empty shards
        args = ["--n-cells", "5", "--shard", f"{i}/3", *COMMON]
        assert main(["generate", str(model_dir), "--out", part, *args]) == 0
    assert sorted(ad.read_h5ad(p).n_obs for p in parts) == [0, 0, 5]
    assert main(["join", *parts, "--out", str(tmp_path / "all.h5ad")]) == 0
    got, ref = ad.read_h5ad(tmp_path / "all.h5ad"), ad.read_h5ad(one)
    assert got.shape == ref.shape and (got.X != ref.X).nnz == 0 and got.obs.equals(ref.obs)
