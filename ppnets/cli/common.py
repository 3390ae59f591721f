"""What every ``ppnets`` subcommand shares: how a command module is run.

A command module defines ``HELP`` (one line for ``ppnets --help``), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status). :func:`run_command` runs
one command module on its own (a command module's ``main``, a ``reproduce/`` script);
``args.command`` is the command line as typed, for the records the command writes.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Optional, Sequence

__all__ = ["run_command", "configure_parser"]


def configure_parser(parser: argparse.ArgumentParser, module) -> argparse.ArgumentParser:
    parser.description = module.DESCRIPTION
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def run_command(module_name: str, argv: Optional[Sequence[str]] = None,
                prog: Optional[str] = None) -> int:
    """Parse ``argv`` with the command module's options and run it."""
    module = importlib.import_module(module_name)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = configure_parser(argparse.ArgumentParser(prog=prog), module)
    args = parser.parse_args(argv)
    args.command = shlex.join([*(prog or "ppnets").split(), *argv])
    return args._run(args)
