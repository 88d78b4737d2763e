import os
import subprocess
import sys

import pytest
import torch

from sc_sed import _threads
from sc_sed._threads import (
    apply_threads,
    physical_cores,
    recommended_threads,
    single_openmp_thread,
    torch_threads_kept,
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("OMP_NUM_THREADS", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("load", "expected"), [(0.0, 4), (0.4, 4), (1.2, 3), (2.6, 1), (9.0, 1)])
def test_busy_cores_are_left_alone(clean_env, load, expected):
    assert recommended_threads(cores=4, loadavg=lambda: (load, 0.0, 0.0)) == expected


def test_omp_num_threads_wins(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert recommended_threads(cores=8, loadavg=lambda: (7.0, 0, 0)) == 3


def test_invalid_omp_num_threads_is_ignored(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "lots")
    assert recommended_threads(cores=2, loadavg=lambda: (0.0, 0, 0)) == 2


def test_one_thread_per_ddp_process(clean_env):
    clean_env.setenv("WORLD_SIZE", "4")
    assert recommended_threads(cores=16, loadavg=lambda: (0.0, 0, 0)) == 1


def test_physical_cores_positive():
    assert physical_cores() >= 1


def test_apply_threads_sets_torch(clean_env):
    before = torch.get_num_threads()
    clean_env.setattr(_threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    clean_env.setattr(_threads, "physical_cores", lambda: 1)
    try:
        assert apply_threads() == 1 and torch.get_num_threads() == 1
        assert apply_threads(2) == 2 and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="threads"):
            apply_threads(0)
    finally:
        torch.set_num_threads(before)


STAT_BEFORE = (
    "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 0\n"
)


def test_busy_from_stat_counts_non_idle_share():
    # 200 jiffies pass on 2 CPUs: 100 busy (user + system), 100 idle + iowait -> 1 busy CPU
    after = "cpu  170 0 130 880 20 0 0 0 0 0\ncpu0 85 0 65 440 10 0 0 0 0 0\ncpu1 85 0 65 440 10 0 0 0 0 0\n"
    assert _threads.busy_from_stat(STAT_BEFORE, after) == pytest.approx(1.0)
    assert _threads.busy_from_stat(STAT_BEFORE, STAT_BEFORE) == 0.0


def test_busy_cpus_measures_this_machine():
    busy = _threads.busy_cpus(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6


@pytest.mark.parametrize(("busy", "expected"), [(0.2, 2), (0.9, 1), (None, 2)])
def test_measured_busy_cpus_win_over_stale_load_average(clean_env, busy, expected):
    # the load average (1.4) still counts a job that just ended; the measurement does not
    clean_env.setattr(_threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert recommended_threads(cores=2, busy=lambda: busy) == expected
    clean_env.setattr(_threads.os, "getloadavg", lambda: (1.4, 0.0, 0.0))
    assert recommended_threads(cores=2, busy=lambda: busy) == (1 if busy is None else expected)


def test_torch_threads_kept_gives_torch_back_its_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch_threads_kept():
            torch.set_num_threads(3)  # as numba's first parallel kernel does
        assert torch.get_num_threads() == 1
        with single_openmp_thread():
            pass
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


#: A fresh process (numba resets OpenMP once, at its first parallel kernel: here scanpy's
#: normalisation of the evaluation space) set to one torch thread, normalising cells as ``tl`` does;
#: ``PATCH`` turns the fix off to show the check can fail.
_EVALUATE = """
import contextlib, importlib, os, torch
torch.set_num_threads(1)
assert torch.get_num_threads() == 1  # torch has set up its OpenMP threads
import sc_sed
if os.environ.get("PATCH"):
    for name in ("_preprocess", "_markers", "_embed"):
        module = importlib.import_module(f"sc_sed.tl.{name}")
        module.torch_threads_kept = contextlib.nullcontext
from sc_sed.tl._preprocess import _normalize  # the evaluation space of every tl comparison
_normalize(sc_sed.datasets.pbmc68k_counts().layers["counts"][:300], normalize=True)
print(torch.get_num_threads())
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: nothing to oversubscribe")
def test_tl_normalisation_leaves_torch_at_one_thread():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("NUMBA_NUM_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", _EVALUATE], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "1", out.stderr[-2000:]
