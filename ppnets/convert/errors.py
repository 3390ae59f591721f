"""The errors a user sees when a checkpoint file cannot be read.

Kept apart from :mod:`ppnets.convert` so that its readers (:mod:`ppnets.convert.torch_pickle`)
raise the same classes without importing the package that imports them.
"""
from __future__ import annotations

import os
import pickle

__all__ = ["CorruptCheckpointError", "UnsafePickleError", "UnsupportedCheckpointError",
           "corrupt_error"]


class CorruptCheckpointError(ValueError):
    """A checkpoint file exists but cannot be read as the format its name says."""


class UnsafePickleError(pickle.UnpicklingError):
    """A pickled checkpoint asks for a global outside the tensor-only allow-list; nothing of it
    was executed."""


class UnsupportedCheckpointError(ValueError):
    """A readable checkpoint in a form ppnets does not read (a very old torch format, a tensor
    feature numpy has no equivalent for)."""


_FORMATS = {".pdparams": "a Paddle state dict (paddle.save)",
            ".safetensors": "a safetensors file",
            ".npz": "a numpy .npz archive",
            "torch": "a PyTorch pickle (torch.save)"}


def corrupt_error(path: str, fmt: str, exc: BaseException) -> CorruptCheckpointError:
    """The error for ``path`` that failed to read as format ``fmt`` (a key of ``_FORMATS``)."""
    size = os.path.getsize(path)
    return CorruptCheckpointError(
        f"cannot read checkpoint {path!r} ({size} bytes) as {_FORMATS[fmt]}: "
        f"{type(exc).__name__}: {str(exc)[:200]}. The file is truncated or corrupt (an "
        "interrupted download or copy) or not of that format: download it again (compare its "
        "size and hash with the source's) or rename it to the format it really has.")
