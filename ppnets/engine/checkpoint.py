"""Atomic, rank-0-only checkpoints with a ``latest.json`` pointer.

Layout under ``<output_dir>/checkpoints/``::

    epoch_0003.pdparams   model state dict after epoch 3 (1-based, completed epochs)
    epoch_0003.pdopt      optimizer state dict, LR scheduler state included
    epoch_0003.json       engine state: epoch, best accuracy, per-epoch history, timing
    best.pdparams         model with the best validation top-1 so far
    latest.json           {"epoch": 3, "params": ..., "opt": ..., "state": ...}

Every file is written to a temporary name in the same folder, flushed, fsync'ed and moved into
place with ``os.replace``; ``latest.json`` is written last, so it only ever names a complete
checkpoint and an interruption at any moment leaves the previous one usable.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Optional

import paddle

from ppnets.utils import atomic_write, atomic_write_json, is_rank0

__all__ = ["save_checkpoint", "read_latest", "load_checkpoint", "prune_checkpoints",
           "portable_optimizer_state", "restore_optimizer_state"]

LATEST = "latest.json"


def _rename_keys(opt_state: dict, mapping: Dict[str, str]) -> dict:
    """Rename the parameter-name prefix of every optimizer accumulator key with ``mapping``."""
    names = sorted(mapping, key=len, reverse=True)   # longest first: conv2d_10 before conv2d_1

    def rename(key: str) -> str:
        for name in names:
            if key == name or key.startswith(name + "_"):
                return mapping[name] + key[len(name):]
        raise KeyError(f"optimizer state entry {key!r} matches no parameter of the model")

    out = {}
    for key, value in opt_state.items():
        if key == "LR_Scheduler":
            out[key] = value
        elif key == "master_weights":
            out[key] = {rename(k): v for k, v in value.items()}
        else:
            out[rename(key)] = value
    return out


def portable_optimizer_state(optimizer, net) -> dict:
    """``optimizer.state_dict()`` keyed by structured parameter names (``stem.0.weight_...``).

    Paddle keys accumulators by the parameters' generated unique names (``conv2d_4.w_0``), which
    depend on how many layers the process built before; structured names make a checkpoint load
    into a model built in any other process or order."""
    mapping = {p.name: "@" + sname for sname, p in net.named_parameters()}
    return _rename_keys(optimizer.state_dict(), mapping)


def restore_optimizer_state(optimizer, net, opt_state: dict) -> None:
    mapping = {"@" + sname: p.name for sname, p in net.named_parameters()}
    optimizer.set_state_dict(_rename_keys(opt_state, mapping))


def _paddle_save(obj) -> Callable[[str], None]:
    return lambda tmp: paddle.save(obj, tmp)


def save_checkpoint(ckpt_dir: str, epoch: int, model_state: dict, opt_state: dict,
                    state: Dict[str, Any], is_best: bool = False) -> Optional[dict]:
    """Write the checkpoint of completed ``epoch`` (rank 0 only; other ranks return None)."""
    if not is_rank0():
        return None
    stem = f"epoch_{epoch:04d}"
    pointer = {"epoch": int(epoch), "params": stem + ".pdparams", "opt": stem + ".pdopt",
               "state": stem + ".json"}
    atomic_write(os.path.join(ckpt_dir, pointer["params"]), _paddle_save(model_state))
    atomic_write(os.path.join(ckpt_dir, pointer["opt"]), _paddle_save(opt_state))
    atomic_write_json(os.path.join(ckpt_dir, pointer["state"]), state)
    if is_best:
        atomic_write(os.path.join(ckpt_dir, "best.pdparams"), _paddle_save(model_state))
    atomic_write_json(os.path.join(ckpt_dir, LATEST), pointer)
    return pointer


def read_latest(ckpt_dir: str) -> Optional[dict]:
    """The ``latest.json`` pointer, or None when there is no checkpoint yet."""
    path = os.path.join(ckpt_dir, LATEST)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        pointer = json.load(f)
    for key in ("params", "opt", "state"):
        if not os.path.isfile(os.path.join(ckpt_dir, pointer[key])):
            raise FileNotFoundError(f"{path} names {pointer[key]}, which is missing; the "
                                    "checkpoint folder was modified by hand. Restore the file or "
                                    "point latest.json at an existing epoch_XXXX set.")
    return pointer


def load_checkpoint(ckpt_dir: str, pointer: dict):
    """(model state, optimizer state, engine state) named by ``pointer``."""
    model_state = paddle.load(os.path.join(ckpt_dir, pointer["params"]))
    opt_state = paddle.load(os.path.join(ckpt_dir, pointer["opt"]))
    with open(os.path.join(ckpt_dir, pointer["state"]), "r", encoding="utf-8") as f:
        state = json.load(f)
    return model_state, opt_state, state


def prune_checkpoints(ckpt_dir: str, keep: int) -> None:
    """Delete all but the ``keep`` newest epoch checkpoints (never the one ``latest`` names)."""
    if keep <= 0 or not is_rank0():
        return
    pointer = read_latest(ckpt_dir)
    epochs = sorted({int(name[6:10]) for name in os.listdir(ckpt_dir)
                     if name.startswith("epoch_") and name[6:10].isdigit()})
    for epoch in epochs[:-keep]:
        if pointer and epoch == pointer["epoch"]:
            continue
        for suffix in (".pdparams", ".pdopt", ".json"):
            path = os.path.join(ckpt_dir, f"epoch_{epoch:04d}{suffix}")
            if os.path.exists(path):
                os.remove(path)
