"""The indexer and the search server make OpenMP workers sleep while they wait (mme5/threads.py).

Checked where it matters: the OpenMP runtimes torch and faiss load report their spin count (libgomp prints its
settings when OMP_DISPLAY_ENV=VERBOSE), 0 when the entry point set the policy before they loaded, 300000 (spin,
then sleep) otherwise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def spin_counts(code: str, **env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    # OMP_DISPLAY_ENV: the test reads what each OpenMP runtime decided; the other variables are what the test is about.
    environment.update(OMP_DISPLAY_ENV="VERBOSE", **env)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return re.findall(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)


@pytest.mark.parametrize("entry", ["indexer.__main__", "search_app.__main__"])
def test_entry_points_make_every_openmp_runtime_wait_asleep(entry):
    counts = spin_counts(f"import {entry}, torch, faiss; torch.ones(1)")
    assert counts, "no OpenMP runtime reported its settings"
    assert set(counts) == {"0"}, counts  # torch's libgomp and the one bundled with faiss's wheel alike


def test_without_an_entry_point_openmp_spins_first():
    """Guards the check above: the probe really sees the spinning default when nothing sets the policy."""
    assert set(spin_counts("import torch, faiss")) == {"300000"}


def test_a_users_own_setting_wins():
    counts = spin_counts("import search_app.__main__, torch", OMP_WAIT_POLICY="ACTIVE")
    assert counts and all(int(count) > 300000 for count in counts)
