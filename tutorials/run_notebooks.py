"""Execute the tutorial notebooks, each in a fresh kernel of this Python interpreter.

``python tutorials/run_notebooks.py``            full settings, outputs written back in place
``python tutorials/run_notebooks.py --fast``     ``SC_SED_FAST=1`` (tiny budgets), nothing written
``python tutorials/run_notebooks.py 01_quickstart.ipynb``  only the named notebooks

The kernel is this interpreter (``sys.executable``), so run it with the project's venv; the
notebooks read ``SC_SED_FAST`` from the environment in their ``parameters`` cell.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parent
KERNEL_NAME = "sc_sed_tutorials"


def notebooks(names: Sequence[str] = ()) -> list[Path]:
    """Return the tutorial notebooks (all of them, or those named), in order."""
    if names:
        return [TUTORIALS / Path(n).name for n in names]
    return sorted(TUTORIALS.glob("[0-9]*.ipynb"))


def _kernel_env(fast: bool) -> dict[str, str]:
    """Environment of the kernel: the budget switch, and this checkout's ``sc_sed`` first."""
    env = {"SC_SED_FAST": "1" if fast else "0"}
    paths = [str(TUTORIALS.parent), os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def execute(path: Path, *, fast: bool, write: bool, timeout: int = 1800) -> float:
    """Run one notebook top to bottom in a new kernel; return the seconds it took.

    Raises ``nbclient.exceptions.CellExecutionError`` when a cell raises. The kernel gets
    ``SC_SED_FAST=1`` when ``fast``; the caller's environment is left as it was.
    """
    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in ("SC_SED_FAST", "PYTHONPATH")}
    os.environ.update(_kernel_env(fast))  # the kernel inherits this process's environment
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # a kernel spec pointing at this interpreter, whatever kernels the user has installed
            write_kernel_spec(Path(tmp) / KERNEL_NAME)
            ksm = KernelSpecManager(kernel_dirs=[tmp])
            km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
            client = NotebookClient(
                nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
            )
            t0 = time.perf_counter()
            try:
                client.execute()
            finally:  # nbclient leaves a kernel it did not create running: stop it here
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
            seconds = time.perf_counter() - t0
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if write:
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(nb, path)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: execute the notebooks, print the time of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--fast", action="store_true", help="SC_SED_FAST=1; do not write outputs")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    for path in notebooks(args.notebooks):
        seconds = execute(path, fast=args.fast, write=not args.fast, timeout=args.timeout)
        print(f"{path.name}: {seconds:.0f} s{' (fast)' if args.fast else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
