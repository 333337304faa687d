"""Worker processes that end with the process that started them.

    ProcessPoolExecutor(..., initializer=die_with_parent)     # or call it first in a worker

A parent killed with SIGKILL (or lost to the OOM killer) runs no cleanup, so its workers
lived on: prepare-data's kept the store's lock and the next prepare-data or train waited
forever; a --seeds worker kept searching, and writing its run, with nobody to report to. On
Linux the kernel can send a child a signal when its parent dies (prctl PR_SET_PDEATHSIG);
elsewhere this does nothing.

The signal is SIGTERM: a search or training worker then stops after its step and saves its
checkpoint (runs/run_loop.py), and any other worker ends by SIGTERM's default action. The
kernel sends it when the *thread* that started the child ends, so start workers from a thread
that lives as long as they should (the main thread, as nasflow does).
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int | None = None, sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send `sig` to this process when its parent dies (Linux). `parent`: the
    pid expected as parent (default: multiprocessing's parent, if this is its child); a parent
    already gone by the time this runs (the signal would never come) ends this process now.
    Returns whether the request was made."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # no libc with prctl (a static or unusual interpreter)
        return False
    if parent is None:
        started_by = multiprocessing.parent_process()
        parent = started_by.pid if started_by is not None else None
    if parent is not None and os.getppid() != parent:  # orphaned before prctl: reparented already
        os.kill(os.getpid(), sig)
    return True

