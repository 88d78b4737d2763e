"""Which data-parallel process this is: world size and global rank under Lightning or torchrun."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_only


def replicas_and_rank(trainer: Any = None) -> tuple[int, int]:
    """Return ``(world_size, global_rank)`` of this process.

    Parameters
    ----------
    trainer
        The Lightning trainer running the fit, if any: its ``world_size`` and
        ``global_rank`` are used (they are known on every rank once the strategy is set up).
        Without one, the initialised :mod:`torch.distributed` process group is asked.

    Returns
    -------
    ``(1, 0)`` for a single process.
    """
    if trainer is not None and getattr(trainer, "world_size", None):
        return int(trainer.world_size), int(trainer.global_rank)
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def global_rank() -> int:
    """Global rank of this process (0 outside distributed training).

    The initialised :mod:`torch.distributed` process group decides when there is one;
    otherwise Lightning's rank, which it reads from the launcher's environment (``RANK``,
    ``LOCAL_RANK``, ``SLURM_PROCID``) and sets when a DDP strategy starts.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(getattr(rank_zero_only, "rank", 0) or 0)
