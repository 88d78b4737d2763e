"""A CPU thread count for torch that does not oversubscribe a busy machine.

Torch starts one intra-op thread per core it sees. On a shared machine (a laptop running
other work, a CI runner, several processes under DDP) those threads compete with the
other jobs, and a run can take many times its idle duration. :func:`recommended_threads`
picks instead:

1. ``OMP_NUM_THREADS`` when set (the user's explicit choice);
2. 1 under DDP (``WORLD_SIZE`` or ``LOCAL_WORLD_SIZE`` > 1): every process has its own;
3. otherwise the physical cores this process may use minus the busy ones, at least 1.
   Busy CPUs are measured over a quarter of a second from ``/proc/stat`` (the share of
   non-idle CPU time times the CPUs it counts), which sees the machine as it is now; the
   1-minute load average (the fallback where ``/proc/stat`` is missing) still counts a job
   that ended a minute ago and misses one that just started.

Only the demo and the command line apply it (:func:`apply_threads`); library calls leave
torch's setting alone, because a user may have called ``torch.set_num_threads``
(:func:`torch_threads_kept` keeps it across the scanpy and scikit-learn calls of ``tl``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)


def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads counted once), at least 1."""
    logical = _usable_logical_cpus()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return logical
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            physical = value.strip()
        elif key.strip() == "core id":
            cores.add((physical, value.strip()))
    return max(1, min(logical, len(cores))) if cores else logical


def _usable_logical_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _stat_times(text: str) -> tuple[int, int, int]:
    """Busy and total CPU time (jiffies) and the number of CPUs in a ``/proc/stat`` text."""
    lines = text.splitlines()
    fields = [int(v) for v in lines[0].split()[1:9]]  # user .. steal; guest is in user
    idle = sum(fields[3:5])  # idle + iowait
    n_cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return sum(fields) - idle, sum(fields), max(1, n_cpus)


def busy_from_stat(before: str, after: str) -> float:
    """Busy CPUs between two ``/proc/stat`` snapshots: non-idle share × CPUs counted.

    Parameters
    ----------
    before, after
        The texts of ``/proc/stat`` read at the start and at the end of an interval.

    Returns
    -------
    The average number of busy CPUs over the interval (0 when no time passed).
    """
    busy0, total0, _ = _stat_times(before)
    busy1, total1, n_cpus = _stat_times(after)
    if total1 <= total0:
        return 0.0
    return max(0.0, (busy1 - busy0) / (total1 - total0)) * n_cpus


def busy_cpus(interval: float = 0.25) -> float | None:
    """CPUs busy over the next ``interval`` seconds (``/proc/stat``), or None where unreadable.

    Parameters
    ----------
    interval
        Seconds to measure over.

    Returns
    -------
    The average number of busy CPUs of the machine (this process sleeps meanwhile).
    """
    try:
        with open("/proc/stat") as f:
            before = f.read()
        time.sleep(interval)
        with open("/proc/stat") as f:
            after = f.read()
        return busy_from_stat(before, after)
    except (OSError, ValueError, IndexError):
        return None


def _load_average() -> float | None:
    loadavg = getattr(os, "getloadavg", None)
    try:
        return loadavg()[0] if loadavg is not None else None
    except OSError:
        return None


def recommended_threads(
    *,
    cores: int | None = None,
    loadavg: Callable[[], tuple[float, float, float]] | None = None,
    busy: Callable[[], float | None] | None = None,
) -> int:
    """Torch threads that do not oversubscribe this machine (see the module docstring).

    Parameters
    ----------
    cores
        Physical cores to assume (default: :func:`physical_cores`).
    loadavg
        Function returning the load averages; when given, its 1-minute value counts the
        busy cores (instead of a measurement).
    busy
        Function returning the busy CPUs now (default: :func:`busy_cpus`, then the load
        average where it gives None; machines with neither count as idle).

    Returns
    -------
    A thread count >= 1.
    """
    explicit = _env_int("OMP_NUM_THREADS")
    if explicit is not None:
        return explicit
    if max(_env_int("WORLD_SIZE") or 1, _env_int("LOCAL_WORLD_SIZE") or 1) > 1:
        return 1
    cores = physical_cores() if cores is None else int(cores)
    if loadavg is not None:
        n_busy = loadavg()[0]
    else:
        n_busy = (busy or busy_cpus)()
        if n_busy is None:
            n_busy = _load_average() or 0.0
    return max(1, min(cores, cores - round(n_busy)))


def apply_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads``, or to :func:`recommended_threads`.

    Parameters
    ----------
    threads
        An explicit count (a positive integer), or None for the recommendation.

    Returns
    -------
    The count that was set.
    """
    import torch

    if threads is not None and int(threads) < 1:
        msg = f"threads must be a positive integer, got {threads!r}."
        raise ValueError(msg)
    count = int(threads) if threads is not None else recommended_threads()
    torch.set_num_threads(count)
    logger.info("Using %d torch CPU thread(s).", count)
    return count


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Run the block and then give torch back the intra-op thread count it had before.

    Third-party code that drives OpenMP resets the count torch reads, because torch shares
    its OpenMP runtime with it: numba's parallel kernels (scanpy's Wilcoxon test in
    ``rank_genes_groups``, its neighbours and UMAP) set one thread per core, and
    ``threadpoolctl`` restores its limits from its own reading. A process set to one torch
    thread then trains with one per core and oversubscribes a busy machine (several times
    slower beside other jobs). :mod:`sc_sed.tl` wraps every such call in this.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@contextmanager
def single_openmp_thread() -> Iterator[None]:
    """Run the block with OpenMP libraries limited to one thread; keep torch's thread count.

    Small scikit-learn fits (the discriminators of :mod:`sc_sed.tl`) run faster, and never
    stall a busy machine, without OpenMP threads. Torch's own count is kept
    (:func:`torch_threads_kept`).
    """
    from threadpoolctl import threadpool_limits

    with torch_threads_kept(), threadpool_limits(limits=1, user_api="openmp"):
        yield
