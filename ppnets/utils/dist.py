"""Which process of a data-parallel run this is.

Read from the environment ``python -m paddle.distributed.launch`` sets for each rank, so the
answer holds before Paddle initialises its parallel context (and in processes that never do).
"""
from __future__ import annotations

import os

__all__ = ["rank", "world_size", "is_rank0"]


def rank() -> int:
    return int(os.environ.get("PADDLE_TRAINER_ID", os.environ.get("PADDLE_GLOBAL_RANK", "0"))
               or 0)


def world_size() -> int:
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1)


def is_rank0() -> bool:
    """True in a single process and in rank 0 of a launched run: the one that writes files."""
    return rank() == 0
