"""Model folders under hostile conditions: racing savers, kills mid-save, foreign targets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import sc_sed
from sc_sed._fs import MARKER, STAGE_TAG, OutputExistsError, clean_stale, staging
from sc_sed.model import _io

GEN = {"n_steps": 2, "progress_bar": False, "seed": 3, "batch_size": 8}


def _first_weight(model) -> float:
    return float(next(model.module.parameters()).view(-1)[0])


def _mark(model, value: float) -> None:
    with torch.no_grad():
        next(model.module.parameters()).view(-1)[0] = value


def _stages(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if STAGE_TAG in p.name]


def _child(script: str, *args: object) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"child exited early: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"child did not reach {path.name}")
        time.sleep(0.01)


RACER = """
import sys, time
from pathlib import Path
import torch
import sc_sed
src, base, me, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = sc_sed.SEDModel.load(src, adata=False, accelerator="cpu")
for r in range(rounds):
    with torch.no_grad():
        next(model.module.parameters()).view(-1)[0] = 1000.0 * (me + 1) + r
    (base / f"ready_{me}_{r}").touch()
    while not (base / f"go_{r}").exists():
        time.sleep(0.0002)
    try:
        model.save(base / f"model_{r}")
        print(r, "saved", flush=True)
    except ValueError as err:
        print(r, "refused", type(err).__name__, flush=True)
"""


def test_two_processes_saving_one_new_folder_exactly_one_wins(model_dir, tmp_path):
    rounds = 4
    procs = [_child(RACER, model_dir, tmp_path, me, rounds) for me in range(2)]
    for r in range(rounds):
        for me in range(2):
            _wait_for(tmp_path / f"ready_{me}_{r}", procs[me])
        (tmp_path / f"go_{r}").touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    lines = [dict(line.split(" ", 1) for line in out.split("\n") if line) for out, _ in outs]
    for r in range(rounds):
        results = sorted(lines[me][str(r)] for me in range(2))
        assert results == ["refused OutputExistsError", "saved"], (r, outs)
        winner = [me for me in range(2) if lines[me][str(r)] == "saved"][0]
        loaded = sc_sed.SEDModel.load(tmp_path / f"model_{r}", adata=False)
        assert _first_weight(loaded) == 1000.0 * (winner + 1) + r
    assert _stages(tmp_path) == []


def test_target_created_during_the_write_is_not_replaced(tiny_model, tmp_path, monkeypatch, tree):
    target = tmp_path / "m"
    real = _io._write_files

    def competitor_wins(*args, **kwargs):
        real(*args, **kwargs)
        target.mkdir()
        (target / "theirs.txt").write_text("first")

    monkeypatch.setattr(_io, "_write_files", competitor_wins)
    with pytest.raises(OutputExistsError, match="appeared while"):
        tiny_model.save(target)
    assert tree(target) == {".": None, "theirs.txt": b"first"}
    assert _stages(tmp_path) == []


def test_overwrite_refuses_a_user_folder_or_file(tiny_model, tmp_path, tree):
    user = tmp_path / "results"
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("my notes")
    (user / "sub" / "data.csv").write_text("1,2,3")
    before = tree(user)
    with pytest.raises(OutputExistsError, match="did not write"):
        tiny_model.save(user, overwrite=True)
    assert tree(user) == before
    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"\x00weights")
    with pytest.raises(ValueError, match="not a folder"):
        tiny_model.save(a_file, overwrite=True)
    assert a_file.read_bytes() == b"\x00weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "results"]


def test_overwrite_replaces_own_folders_including_pre_marker_ones(tiny_model, tmp_path):
    ref = tiny_model.generate(4, **GEN)
    target = tmp_path / "m"
    tiny_model.save(target)
    assert (target / MARKER).is_file()
    (target / MARKER).unlink()  # a folder saved before the marker existed
    (target / "notes.txt").write_text("kept")
    tiny_model.save(target, overwrite=True)
    assert (target / MARKER).is_file() and (target / "notes.txt").read_text() == "kept"
    got = sc_sed.SEDModel.load(target, adata=False).generate(4, **GEN)
    assert (got.X != ref.X).nnz == 0
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "model.pt").write_bytes(b"pickle")
    tiny_model.save(legacy, overwrite=True)
    assert not (legacy / "model.pt").exists()
    assert sc_sed.SEDModel.load(legacy, adata=False) is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    tiny_model.save(empty, overwrite=True)
    assert (empty / "sc_sed_model.json").is_file()


@pytest.mark.parametrize("prefix", ["../x_", "a/b_", "..", "sub\\x_", "x..y"])
def test_prefix_cannot_leave_the_folder(tiny_model, tmp_path, prefix):
    (tmp_path / "m").mkdir()
    with pytest.raises(ValueError, match="prefix"):
        tiny_model.save(tmp_path / "m", prefix=prefix, overwrite=True)
    with pytest.raises(ValueError, match="prefix"):
        tiny_model.save(tmp_path / "new", prefix=prefix)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    assert list((tmp_path / "m").iterdir()) == []


KILLED_WRITER = """
import sys, time
from pathlib import Path
import sc_sed
from sc_sed.model import _io
src, target, signal_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
model = sc_sed.SEDModel.load(src, adata=False, accelerator="cpu")
real = _io._write_metadata
def hang(*args):
    real(*args)
    signal_file.touch()
    time.sleep(600)
_io._write_metadata = hang
model.save(target)
"""


def test_sigkill_mid_save_leaves_nothing_and_the_next_save_cleans_up(
    model_dir, tiny_model, tmp_path
):
    target = tmp_path / "m"
    proc = _child(KILLED_WRITER, model_dir, target, tmp_path / "writing")
    _wait_for(tmp_path / "writing", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists()
    assert len(_stages(tmp_path)) == 1  # the killed save's staging folder
    tiny_model.save(target)
    assert _stages(tmp_path) == []
    loaded = sc_sed.SEDModel.load(target, adata=False)
    assert _first_weight(loaded) == _first_weight(tiny_model)


KILLED_REPLACER = """
import sys, time
from pathlib import Path
import sc_sed
import sc_sed._fs as fs
src, target, signal_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
model = sc_sed.SEDModel.load(src, adata=False, accelerator="cpu")
def hang(*args):
    signal_file.touch()
    time.sleep(600)
fs.rename_noreplace = hang
model.save(target, overwrite=True)
"""


def test_sigkill_while_replacing_puts_the_old_model_back(model_dir, tiny_model, tmp_path):
    target = tmp_path / "m"
    old = sc_sed.SEDModel.load(model_dir, adata=False)
    _mark(old, 7.0)
    old.save(target)
    proc = _child(KILLED_REPLACER, model_dir, target, tmp_path / "swapping")
    _wait_for(tmp_path / "swapping", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not target.exists()  # moved aside, into the killed writer's staging folder
    with pytest.raises(OutputExistsError, match="already exists"):
        tiny_model.save(target)  # the cleanup restores the old model first
    assert _stages(tmp_path) == []
    assert _first_weight(sc_sed.SEDModel.load(target, adata=False)) == 7.0
    tiny_model.save(target, overwrite=True)
    assert _first_weight(sc_sed.SEDModel.load(target, adata=False)) == _first_weight(tiny_model)


def test_a_live_writers_staging_folder_is_left_alone(tmp_path):
    target = tmp_path / "out.h5ad"
    with staging(target) as stage:
        assert clean_stale(target) == []
        assert stage.is_dir()
    assert not stage.exists()
    dead = tmp_path / f".out.h5ad{STAGE_TAG}dead"
    dead.mkdir()
    (dead / ".lock").touch()  # nobody holds its lock: its writer is gone
    assert clean_stale(target) == [dead] and not dead.exists()
