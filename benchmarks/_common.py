"""Helpers shared by the benchmark scripts: devices, timing, peak memory, tables, JSON.

Peak memory
-----------
CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
memory allocated just before the call — the extra memory the call needed (activations,
gradients, temporaries), excluding what was already resident (parameters, optimiser
state, inputs).

CPU (Linux): the same quantity from the process's resident set. Before the call the
peak-RSS counter is reset (``/proc/self/clear_refs`` ← ``5``) and freed memory is handed
back to the OS (``malloc_trim``); glibc is told to serve every allocation of 64 KiB or
more with its own ``mmap`` (``mallopt``), so freeing a tensor lowers the RSS at once and
the peak (``VmHWM``) minus the RSS before the call is the call's own peak. It counts
touched pages only, so allocated-but-unwritten memory is not counted, and it includes a
little allocator and interpreter noise (a few MB). Elsewhere it is reported as None.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def t_interval(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean with its 95% t-interval over the finite values (interval None below two)."""
    from scipy import stats

    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": 1}
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(v.size)}


def quiet(*more: str) -> None:
    """Silence warnings and Lightning/scvi-tools chatter (and the ``more`` loggers) for the process."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "scvi", *more):
        logging.getLogger(name).setLevel(logging.ERROR)


_MMAP_THRESHOLD = 64 * 1024


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without a GPU raises."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        msg = "--device cuda was requested but torch sees no CUDA GPU; use --device cpu or auto."
        raise SystemExit(msg)
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of one call of ``fn``, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float | None:
    """Median, or None for no values."""
    return statistics.median(values) if values else None


class PeakMemory:
    """Measure the extra peak memory of calls (see the module docstring).

    Parameters
    ----------
    device
        Where the measured work runs.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.method = "cuda_max_memory_allocated" if device.type == "cuda" else self._setup_cpu()
        gc.collect()
        gc.freeze()  # later collections (before each call) then skip everything older: fast

    @staticmethod
    def _setup_cpu() -> str:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, 0)
        except (OSError, AttributeError):
            return "unavailable"
        return "rss_peak_delta"

    @staticmethod
    def _status_kb(field: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def _before(self) -> int:
        gc.collect()
        if self.method == "cuda_max_memory_allocated":
            torch.cuda.reset_peak_memory_stats(self.device)
            return torch.cuda.memory_allocated(self.device)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return self._status_kb("VmRSS") * 1024

    def _after(self) -> int:
        if self.method == "cuda_max_memory_allocated":
            return torch.cuda.max_memory_allocated(self.device)
        return self._status_kb("VmHWM") * 1024

    def close(self) -> None:
        """Unfreeze the garbage collector; give glibc back its default thresholds (128 KiB)."""
        gc.unfreeze()
        if self.method == "rss_peak_delta":
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
            libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)

    def run(self, fn: Callable[[], Any]) -> tuple[float, float | None]:
        """Call ``fn`` once; return ``(seconds, extra peak MiB or None)``."""
        if self.method == "unavailable":
            return timed(fn, self.device), None
        base = self._before()
        seconds = timed(fn, self.device)
        return seconds, max(0, self._after() - base) / 2**20


def environment(device: torch.device) -> dict[str, Any]:
    """Where the numbers were measured."""
    info = {
        "torch": torch.__version__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Plain-text table; ``columns`` are ``(key, header, format)`` (None prints as ``-``)."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else format(row[k], f) for k, _, f in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def read_mergeable(
    paths: Sequence[str | Path],
    free: Sequence[str],
    keys: Callable[[dict[str, Any]], Sequence[tuple]],
    what: str,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[tuple, Path]]:
    """Read benchmark results to summarise together, refusing what cannot be merged.

    Every file must agree on its ``settings`` except the keys in ``free``, and no unit of work
    (``keys(result)``, e.g. a (weight, seed) arm) may be in two files; otherwise the process
    exits with a message naming the file. Returns the results, the shared settings and, per
    key, the file it came from.
    """
    results = [json.loads(Path(p).read_text()) for p in paths]
    first = {k: v for k, v in results[0]["settings"].items() if k not in free}
    seen: dict[tuple, Path] = {}
    for path, result in zip(paths, results, strict=True):
        other = {k: v for k, v in result["settings"].items() if k not in free}
        if other != first:
            diff = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
            raise SystemExit(f"{path} was run with other settings ({', '.join(diff)}); not merged.")
        for key in keys(result):
            if key in seen:
                raise SystemExit(f"The {what} {key} is in both {seen[key]} and {path}; not merged.")
            seen[key] = Path(path)
    return results, first, seen


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON, creating parent folders.

    The text goes to a temporary file beside ``path`` that then replaces it, so a run stopped
    while writing (summaries are rewritten after every step of long runs) keeps the last file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path
