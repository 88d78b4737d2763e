"""Fixtures for the hostile-input safety suite: a tiny saved model and tree snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

import sc_sed


@pytest.fixture(scope="session")
def tiny_model(model_dir):
    """The session's tiny saved model, loaded on the CPU (generation and saves only)."""
    return sc_sed.SEDModel.load(model_dir, adata=False, accelerator="cpu")


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``path`` (itself included) with its bytes (None: folder)."""
    path = Path(path)
    if path.is_file():
        return {".": path.read_bytes()}
    out: dict[str, bytes | None] = {".": None}
    for entry in sorted(path.rglob("*")):
        out[str(entry.relative_to(path))] = entry.read_bytes() if entry.is_file() else None
    return out


@pytest.fixture
def tree():
    """``tree(path)``: a snapshot of a file or folder to compare before and after."""
    return snapshot
