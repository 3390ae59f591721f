"""Keep the calling thread's alternate signal stack through a foreign library call.

OpenVINO's CPU plugin (2026.4) installs an alternate signal stack (``sigaltstack``) on the
thread that loads it (a ``Core.get_property`` on "CPU" is enough) or compiles a model with it,
and when the compiled model is destroyed it puts back the stack that was there before. Destroyed
out of creation order -- compile A, compile B, free A, free B -- the thread is left with A's
freed stack. CPython runs every Python-level signal handler on the alternate stack
(``SA_ONSTACK``), so the next signal with one -- the SIGCHLD handler Paddle's DataLoader
installs while it has workers, at the first worker that exits -- cannot be delivered and the
kernel kills the process with SIGSEGV. Reproduced with two OpenVINO sessions then a training run
(tests/runtime/test_sessions.py). :func:`keep_signal_stack` around every such call puts the
thread's own stack back at once, so the plugin never leaves one of its stacks behind.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
from typing import Iterator, Optional

__all__ = ["keep_signal_stack", "signal_stack"]


_SS_DISABLE = 2


class _StackT(ctypes.Structure):   # stack_t of <signal.h> on Linux
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


def _sigaltstack():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):
        return None


def signal_stack() -> Optional[_StackT]:
    """The calling thread's alternate signal stack (``ss_sp``, ``ss_flags``, ``ss_size``), or
    None where it cannot be read (not Linux)."""
    call = _sigaltstack()
    if call is None:
        return None
    current = _StackT()
    if call(None, ctypes.byref(current)) != 0:
        return None
    return current


@contextlib.contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Run the body, then give the calling thread back the alternate signal stack it had."""
    call, before = _sigaltstack(), signal_stack()
    try:
        yield
    finally:
        if call is not None and before is not None:
            after = signal_stack()
            if after is not None and _key(after) != _key(before):
                disabled = bool(before.ss_flags & _SS_DISABLE)   # there was none
                restore = (_StackT(None, _SS_DISABLE, 0) if disabled
                           else _StackT(before.ss_sp, 0, before.ss_size))
                call(ctypes.byref(restore), None)


def _key(stack: _StackT):
    disabled = bool(stack.ss_flags & _SS_DISABLE)
    return (None, 0) if disabled else (stack.ss_sp, stack.ss_size)
