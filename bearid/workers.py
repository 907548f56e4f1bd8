"""Process pools whose workers end with the command that started them.

Without this, the workers of a killed command (SIGKILL, the OOM killer) go on with the jobs
already queued to them and write files after the command is gone, where its re-run meets
them (an ingest re-run found hidden copies appearing beside the photos it had just filed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _end_with_parent(parent: int) -> None:
    """Worker initializer: ask Linux to kill this worker when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass  # no prctl: workers end when they next read their closed queue
    if multiprocessing.get_start_method() == "fork" and os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor of `workers` processes that die with this one."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_end_with_parent, initargs=(os.getpid(),))
