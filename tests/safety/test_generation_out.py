"""generate(out=...) never replaces what sc_sed did not write, and never leaves half a file."""

from __future__ import annotations

import anndata as ad
import pytest

from sc_sed._fs import MARKER, STAGE_TAG, OutputExistsError

KW = {"n_steps": 2, "progress_bar": False, "seed": 1, "batch_size": 4}


@pytest.mark.parametrize("name", ["results.h5ad", "results.zarr"])
def test_overwrite_refuses_a_user_folder(tiny_model, tmp_path, tree, name):
    user = tmp_path / name
    (user / "inner").mkdir(parents=True)
    (user / "inner" / "counts.csv").write_text("a,b\n1,2\n")
    (user / "README").write_text("my data")
    before = tree(user)
    for overwrite in (True, False):
        with pytest.raises(OutputExistsError):
            tiny_model.generate(3, out=user, overwrite=overwrite, **KW)
    assert tree(user) == before
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_overwrite_refuses_a_file_where_a_zarr_store_goes(tiny_model, tmp_path):
    path = tmp_path / "x.zarr"
    path.write_bytes(b"not a store")
    with pytest.raises(OutputExistsError, match="did not write"):
        tiny_model.generate(3, out=path, overwrite=True, **KW)
    assert path.read_bytes() == b"not a store"


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_overwrite_replaces_an_earlier_output(tiny_model, tmp_path, suffix):
    path = tmp_path / f"cells{suffix}"
    tiny_model.generate(5, out=path, **KW)
    if suffix == ".zarr":
        assert (path / MARKER).is_file()
    with pytest.raises(OutputExistsError, match="already exists"):
        tiny_model.generate(3, out=path, **KW)
    tiny_model.generate(3, out=path, overwrite=True, **KW)
    read = ad.read_zarr if suffix == ".zarr" else ad.read_h5ad
    assert read(path).n_obs == 3
    if suffix == ".zarr":  # a store written before the marker existed is still recognised
        (path / MARKER).unlink()
        tiny_model.generate(2, out=path, overwrite=True, **KW)
        assert read(path).n_obs == 2 and (path / MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_interrupted_generation_leaves_nothing_and_is_cleaned_next_time(
    tiny_model, tmp_path, monkeypatch
):
    path = tmp_path / "cells.h5ad"

    def crash(*args, **kwargs):
        yield from ()
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(tiny_model, "_generate_batches", crash)
        with pytest.raises(KeyboardInterrupt):
            tiny_model.generate(5, out=path, **KW)
    assert list(tmp_path.iterdir()) == []
    stale = tmp_path / f".cells.h5ad{STAGE_TAG}killed"  # as a SIGKILLed run leaves it
    stale.mkdir()
    (stale / ".lock").touch()
    (stale / "cells.h5ad").write_bytes(b"half")
    tiny_model.generate(5, out=path, **KW)
    assert [p.name for p in tmp_path.iterdir()] == ["cells.h5ad"]
    assert ad.read_h5ad(path).n_obs == 5
