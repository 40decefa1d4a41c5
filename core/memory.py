"""How a console run's process keeps and hands back the memory it frees (glibc's allocator; elsewhere nothing).

Scoring a batch of 256 users over 200,000 items makes tensors of 200 MB. glibc maps each block over
32 MB afresh and unmaps it when freed, so every batch faulted its pages in again: a third of an
evaluation's CPU time went to the kernel (1.0 of 3.1 s per 2,560 users; 40 of 132 s of a whole
``train --model itemknn``). ``keep_freed_memory`` has glibc keep freed blocks for reuse instead.

What it keeps stays resident, and blocks of every size freed in turn fragment the heap: a 25M-event
SASRec run's resident memory only ever grew, each phase adding its own leftovers to the last one's
(4.0-4.1 GB peak; what was really in use never passed 2 GB). ``hand_back_freed_memory`` returns the
pages of every free block to the system at once (``malloc_trim``): called where one pass of work
ends and the next begins, a pass still reuses its own blocks, but no pass inherits another's.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Optional

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h


@functools.lru_cache(maxsize=None)
def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist in glibc only
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> None:
    """Ask glibc to keep large freed blocks for reuse instead of handing them back to the system. A
    console run only (the CLI calls it before torch is imported): a process that lives for one command."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)


def hand_back_freed_memory() -> None:
    """Return the pages of every freed block to the system (they are faulted in again when reused):
    the resident memory falls to what is in use. A few milliseconds; nothing where glibc is missing."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
