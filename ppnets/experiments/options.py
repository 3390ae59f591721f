"""What every experiment is told: the environment of a run (data, output folder, device, config
overrides, smoke, seed, resume) and how it was invoked (for the run record).

Configs hold the recipe; :class:`ExperimentOptions` holds the environment. The command lines
that fill it (``--data-dir/--data-file``, ``--output-dir``, ``-o``, ``--smoke``, ...) are
:mod:`ppnets.cli.experiment`'s.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

__all__ = ["ExperimentOptions", "ExperimentError"]


class ExperimentError(ValueError):
    """The options do not describe a run that can start (a row that does not exist, a data set
    the experiment cannot read, ...); the message says what to change."""


@dataclass
class ExperimentOptions:
    """The environment of one experiment run.

    ``overrides`` are ``key.sub=value`` strings applied after the recipe and after the values
    the other options imply; ``only`` picks rows of a row table; ``train_list``/``val_list``
    are PaddleClas list files (ImageNet experiments); ``script`` and ``command`` (the command
    line as typed, one word per item) go into the run record."""

    output_dir: str
    data_file: Optional[str] = None
    data_dir: Optional[str] = None
    device: str = "cpu"
    overrides: List[str] = field(default_factory=list)
    smoke: bool = False
    seed: Optional[int] = None
    resume: bool = True
    only: Optional[List[str]] = None
    plot: bool = True
    train_list: Optional[str] = None
    val_list: Optional[str] = None
    script: str = "ppnets"
    command: Sequence[str] = ()

    @property
    def out_root(self) -> str:
        """Where the results go: ``output_dir``, or ``output_dir/smoke`` for a smoke run (a smoke
        run never overwrites a real one)."""
        return os.path.join(self.output_dir, "smoke") if self.smoke else self.output_dir

    def common_overrides(self, data_file: Optional[str] = None) -> List[str]:
        """Config overrides implied by the options (the user's ``overrides`` come after and
        win)."""
        out = [f"device={self.device}"]
        if data_file:
            out.append(f"data.data_file={data_file}")
        if self.seed is not None:
            out.append(f"train.seed={self.seed}")
        if not self.resume:
            out.append("train.resume=false")
        return out
