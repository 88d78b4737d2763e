"""Seed blocks and shards of a generation run (pure bookkeeping, no torch modules).

The rows ``0..n-1`` of a run are cut into fixed blocks of ``batch_size`` rows; block ``b``
is sampled on its own with a generator seeded from ``(seed, b)``. A shard ``(i, k)`` takes
a contiguous run of whole blocks, so the rows do not depend on how many shards there are.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_shard(shard: Any) -> tuple[int, int] | None:
    """Validate ``shard=(i, n)``: ``0 <= i < n``; None means the whole run."""
    if shard is None:
        return None
    ok = (
        isinstance(shard, tuple | list)
        and len(shard) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in shard)
    )
    if not ok or not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        msg = f"shard must be a pair (i, n) of integers with 0 <= i < n, got {shard!r}."
        raise ValueError(msg)
    return int(shard[0]), int(shard[1])


def shard_rows(n_rows: int, batch_size: int, shard: tuple[int, int] | None) -> range:
    """Return the global rows of ``shard`` (whole seed blocks of ``batch_size`` rows)."""
    if shard is None:
        return range(n_rows)
    i, n = shard
    n_blocks = -(-n_rows // batch_size)
    first, last = i * n_blocks // n, (i + 1) * n_blocks // n
    return range(min(first * batch_size, n_rows), min(last * batch_size, n_rows))


def block_seed(seed: int, block: int) -> int:
    """Return a 63-bit seed for block ``block`` of a run seeded with ``seed`` (numpy SeedSequence)."""
    state = np.random.SeedSequence(seed, spawn_key=(block,)).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])
