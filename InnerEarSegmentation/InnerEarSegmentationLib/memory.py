"""Give freed arrays back to the system at once, in a process that segments and then exits.

glibc's allocator raises its mmap threshold each time a large block is freed, so later arrays of
up to 32 MB come from a heap that never shrinks: a head CT's boxes, probabilities and slabs then
add up in the process's memory long after each was freed (a 512x512x400 scan peaked 80 MB
higher). A fixed threshold keeps every large array in its own mapping, returned when freed.
Only for the command line and the worker process, never inside Slicer's own process.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3       # mallopt's parameter number (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept fixed


def return_large_blocks_promptly() -> bool:
    """Fixes the allocator's mmap threshold (glibc on Linux); False where there is none to set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # another C library (musl): nothing to tune
        return False
