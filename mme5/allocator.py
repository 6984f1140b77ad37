"""Make the C allocator give big freed buffers back to the system (glibc only; elsewhere nothing).

A decoded PNG or TIFF is held in 16 MB blocks (Pillow's block size). glibc serves a block that
size from the calling thread's own heap ("arena") once its dynamic mmap threshold has risen past
it (it rises up to 32 MB after the first big free), and a freed block then stays in that arena,
resident, for the thread's next allocation. With one arena per reader thread, every thread keeps
its own largest image: eight 169-megapixel PNGs on eight workers held 3.9 GB although the decode
budget let only one decode run at a time (measured at a smaller scale, eight 36 MP PNGs decoded
one at a time in eight threads: 1,780 MB retained; with this module 350 MB, about one decode).

Two settings fix it, whatever the worker count:
- a fixed mmap threshold (``M_MMAP_THRESHOLD``): buffers of ``MMAP_THRESHOLD`` bytes or more always
  get their own mapping and go back to the system when freed (the dynamic threshold is off);
- at most ``ARENA_MAX`` arenas (``M_ARENA_MAX``), so smaller freed memory is shared by the threads
  instead of kept once per thread (alone it halves the retention above; with the threshold it
  changes little, but it also bounds the decoder's and the model's smaller buffers).

A user's own ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_ARENA_MAX`` environment variable wins.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD = 8 << 20  # bytes: half a Pillow block (16 MB); smaller images stay in the (two) arenas
ARENA_MAX = 2

_lock = threading.Lock()
_applied: dict[str, int] | None = None


def bound_heap_growth() -> dict[str, int]:
    """Apply the settings once per process (later calls return what was applied): call it before
    starting threads that decode images. Returns {setting: value} for what it changed."""
    global _applied
    with _lock:
        if _applied is not None:
            return _applied
        _applied = {}
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return _applied
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # a static or unusual build: keep the defaults
            return _applied
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        for name, option, value, variable in (
            ("mmap_threshold", M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            ("arena_max", M_ARENA_MAX, ARENA_MAX, "MALLOC_ARENA_MAX"),
        ):
            if variable in os.environ:
                continue  # the user chose
            if mallopt(option, value) == 1:
                _applied[name] = value
            else:
                log.debug("mallopt(%s, %d) refused; keeping glibc's default", name, value)
        return _applied
