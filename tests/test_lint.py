"""The repo passes its own lint rules, and nothing reaches the packages through sys.path or PYTHONPATH hacks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED: set[Path] = set()
HACK = re.compile(r"sys\.path\s*(\.insert|\.append|\[|\+=|=)|PYTHONPATH")


def test_ruff_passes_on_the_whole_repo():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is in requirements.txt; install it with pip install -r requirements.txt"
    result = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_sys_path_or_pythonpath_hacks():
    offenders = []
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[0] in {".venv", "artifacts"} or path == Path(__file__) or relative in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if HACK.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "run modules with `python -m` from the repo root instead:\n" + "\n".join(offenders)
