"""Resolve Lightning-style ``accelerator``/``devices`` arguments to one torch device."""

from __future__ import annotations

import torch
from lightning.pytorch.accelerators import (
    Accelerator,
    CPUAccelerator,
    CUDAAccelerator,
    MPSAccelerator,
)

_ACCELERATORS: dict[str, type[Accelerator]] = {
    "cpu": CPUAccelerator,
    "cuda": CUDAAccelerator,
    "mps": MPSAccelerator,
}


def _accelerator_class(accelerator: str) -> type[Accelerator]:
    """Return the Lightning accelerator class named by ``accelerator`` (``"auto"``: the best one)."""
    name = str(accelerator).lower()
    if name in ("auto", "gpu"):
        for candidate in (CUDAAccelerator, MPSAccelerator):
            if candidate.is_available():
                return candidate
        if name == "gpu":
            msg = "accelerator='gpu' but no GPU is available; use accelerator='cpu' or 'auto'."
            raise ValueError(msg)
        return CPUAccelerator
    if name not in _ACCELERATORS:
        msg = (
            f"Unknown accelerator {accelerator!r}; use one of 'auto', 'cpu', 'gpu', "
            f"{', '.join(repr(n) for n in _ACCELERATORS if n != 'cpu')}."
        )
        raise ValueError(msg)
    cls = _ACCELERATORS[name]
    if not cls.is_available():
        msg = f"accelerator={accelerator!r} is not available here; use 'cpu' or 'auto'."
        raise ValueError(msg)
    return cls


def resolve_device(
    accelerator: str = "auto", devices: int | list[int] | str = "auto"
) -> torch.device:
    """One torch device from Lightning's ``accelerator`` and ``devices`` arguments.

    Uses Lightning's public accelerator classes (``parse_devices`` and
    ``get_parallel_devices``), so the arguments mean what they mean in ``Trainer``:
    ``devices=1`` is one device (the first), ``devices=[2]`` or ``"2,"`` is device 2,
    ``"auto"`` is the first device of the chosen accelerator.

    Parameters
    ----------
    accelerator
        ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"gpu"``, ``"cuda"`` or ``"mps"``.
    devices
        Which device of that accelerator; it must name exactly one.

    Returns
    -------
    The torch device.
    """
    cls = _accelerator_class(accelerator)
    parsed = cls.parse_devices(1 if devices == "auto" else devices)
    found = cls.get_parallel_devices(parsed)
    if len(found) != 1:
        msg = (
            f"devices={devices!r} names {len(found)} devices; a model is loaded onto one "
            "device (e.g. devices=1 or devices=[0])."
        )
        raise ValueError(msg)
    return found[0]
