"""mme5/allocator.py: the C allocator set up so decoded images' memory goes back to the system (the memory
itself is measured in tests/indexer/test_storage_guarantees_build.py); a user's own malloc variables win."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = "import json; from mme5.allocator import bound_heap_growth as b; print(json.dumps([b(), b()]))"

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")


def applied(**variables) -> list[dict]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=dict(env, **variables), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_both_settings_are_applied_once():
    from mme5.allocator import ARENA_MAX, MMAP_THRESHOLD

    first, again = applied()
    assert first == {"mmap_threshold": MMAP_THRESHOLD, "arena_max": ARENA_MAX} and again == first


def test_a_users_malloc_variables_are_kept():
    assert applied(MALLOC_ARENA_MAX="4")[0] == {"mmap_threshold": 8 << 20}
    assert applied(MALLOC_MMAP_THRESHOLD_="65536")[0] == {"arena_max": 2}
