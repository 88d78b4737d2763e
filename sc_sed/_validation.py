"""Argument checks shared by every layer of the package (it imports nothing from it)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def check_int(value: Any, name: str, minimum: int, expected: str) -> None:
    """Refuse anything but an integer ``>= minimum`` (a bool too).

    Parameters
    ----------
    value
        The argument's value.
    name
        The argument's name, for the message.
    minimum
        Smallest value accepted.
    expected
        What the argument must be, for the message (``"name must be <expected>"``).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{name} must be {expected}, got {value!r}."
        raise ValueError(msg)


def check_count(value: Any, name: str, what: str = "") -> None:
    """Refuse anything but a positive integer (Python or NumPy; a bool is refused).

    Parameters
    ----------
    value
        The argument's value.
    name
        The argument's name, for the message.
    what
        What the number counts, for the message (e.g. ``"markers shown per group"``).
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        counted = f" ({what})" if what else ""
        msg = f"`{name}` must be a positive integer{counted}, got {value!r}."
        raise ValueError(msg)


def progress_flag(enable_progress_bar: bool, progress_bar: bool | None) -> bool:
    """Return whether to show progress bars, honouring the deprecated ``progress_bar=`` spelling.

    Parameters
    ----------
    enable_progress_bar
        The argument, spelled as in scvi-tools and Lightning.
    progress_bar
        The earlier spelling (None when not given); it wins, with a warning.
    """
    if progress_bar is None:
        return bool(enable_progress_bar)
    warnings.warn(
        "progress_bar= is deprecated; use enable_progress_bar= (as in scvi-tools and Lightning).",
        FutureWarning,
        stacklevel=3,
    )
    return bool(progress_bar)
