"""Argument checks shared by every layer of the package (it imports nothing from it)."""

from __future__ import annotations

from typing import Any


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
