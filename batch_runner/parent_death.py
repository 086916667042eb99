"""Let a child process die with its parent, even when the parent is killed with SIGKILL.

Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in the child before ``exec``. The signal comes when the
*thread* that started the child exits, so start servers from a thread that lives as long as they
should (the main thread, normally). Elsewhere this is a no-op and a killed parent leaves the child.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent_preexec():
    """A ``preexec_fn`` for ``subprocess.Popen``, or None where the platform has no such thing."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    def preexec() -> None:  # runs in the child between fork and exec: nothing but system calls
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec
