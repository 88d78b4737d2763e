"""A CPU thread count for torch that does not oversubscribe a busy machine.

Torch starts one intra-op thread per core it sees. On a shared machine (a laptop running
other work, a CI runner, several processes under DDP) those threads compete with the
other jobs, and a run can take many times its idle duration. :func:`recommended_threads`
picks instead:

1. ``OMP_NUM_THREADS`` when set (the user's explicit choice);
2. 1 under DDP (``WORLD_SIZE`` or ``LOCAL_WORLD_SIZE`` > 1): every process has its own;
3. otherwise the physical cores this process may use minus the busy ones (the 1-minute
   load average, rounded), at least 1.

Only the demo and the command line apply it (:func:`apply_threads`); library calls leave
torch's setting alone, because a user may have called ``torch.set_num_threads``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

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


def recommended_threads(
    *,
    cores: int | None = None,
    loadavg: Callable[[], tuple[float, float, float]] | None = None,
) -> int:
    """Torch threads that do not oversubscribe this machine (see the module docstring).

    Parameters
    ----------
    cores
        Physical cores to assume (default: :func:`physical_cores`).
    loadavg
        Function returning the load averages (default: :func:`os.getloadavg`; machines
        without it count as idle).

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
    loadavg = loadavg or getattr(os, "getloadavg", None)
    busy = round(loadavg()[0]) if loadavg is not None else 0
    return max(1, min(cores, cores - busy))


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
