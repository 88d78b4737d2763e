"""`sc-sed generate --shard i/n` and `sc-sed join`: joined shards equal one process's file."""

from __future__ import annotations

import anndata as ad
import pytest

from sc_sed.cli import main


def test_generate_shards_then_join(model_dir, tmp_path, capsys):
    common = ["--n-cells", "10", "--n-steps", "2", "--batch-size", "3", "--seed", "4"]
    one = tmp_path / "one.h5ad"
    assert main(["generate", str(model_dir), "--out", str(one), *common]) == 0
    parts = [tmp_path / f"part_{i}.h5ad" for i in range(3)]
    for i, part in enumerate(parts):
        rc = main(["generate", str(model_dir), "--out", str(part), "--shard", f"{i}/3", *common])
        assert rc == 0
    assert "shard 2/3 of 10 rows" in capsys.readouterr().out
    assert main(["join", *map(str, parts[::-1]), "--out", str(tmp_path / "all.h5ad")]) == 0
    got, ref = ad.read_h5ad(tmp_path / "all.h5ad"), ad.read_h5ad(one)
    assert got.shape == ref.shape and (got.X != ref.X).nnz == 0
    assert got.obs.equals(ref.obs)


@pytest.mark.parametrize("shard", ["3/3", "a/b", "1", "-1/2"])
def test_bad_shard_is_one_line(model_dir, tmp_path, capsys, shard):
    rc = main(["generate", str(model_dir), "--out", str(tmp_path / "x.h5ad"), f"--shard={shard}"])
    err = capsys.readouterr().err
    assert rc == 1 and "--shard" in err and len(err.strip().splitlines()) == 1


def test_join_missing_shard_is_one_line(model_dir, tmp_path, capsys):
    part = tmp_path / "part_0.h5ad"
    main(["generate", str(model_dir), "--out", str(part), "--shard", "0/2", "--n-cells", "4",
          "--n-steps", "2"])  # fmt: skip
    assert main(["join", str(part), "--out", str(tmp_path / "all.h5ad")]) == 1
    err = capsys.readouterr().err
    assert "missing [1]" in err and "Traceback" not in err
