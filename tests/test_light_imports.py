"""CLIs that only parse arguments start without torch or faiss (seconds saved on every --help)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "faiss", "transformers", "numpy", "sqlalchemy"]

# Runs a module as `python -m` does, then reports which heavy packages got imported.
PROBE = (
    """
import json, runpy, sys
module, *argv = sys.argv[1:]
sys.argv = [module, *argv]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exit:
    code = exit.code or 0
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(%r))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""
    % HEAVY
)


def probe(*command: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *command], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    return {**json.loads(result.stderr.strip().splitlines()[-1]), "stdout": result.stdout}


# indexer's parser reads two defaults from its build and reader modules (numpy, SQLAlchemy, FAISS): never torch.
@pytest.mark.parametrize(
    "command, allowed",
    [
        (("indexer", "--help"), {"numpy", "sqlalchemy", "faiss"}),
        (("indexer", "build", "--help"), {"numpy", "sqlalchemy", "faiss"}),
        (("synth", "languages"), set()),
        (("mme5", "--help"), set()),
    ],
)
def test_cli_without_a_model_imports_no_heavy_package(command, allowed):
    outcome = probe(*command)
    assert outcome["code"] == 0, outcome
    assert outcome["stdout"].strip(), "the command printed nothing"
    unexpected = set(outcome["loaded"]) - allowed
    assert not unexpected, f"python -m {' '.join(command)} imported {sorted(unexpected)}"


def test_the_probe_sees_heavy_imports_when_they_happen():
    """Guards the check above: a command that does need the catalog really shows up as importing it."""
    outcome = probe("indexer", "info", "--index", str(REPO / "no-such-index"))
    assert outcome["code"] == 1
    assert "sqlalchemy" in outcome["loaded"]


def test_lazy_names_still_resolve_and_unknown_names_fail_clearly():
    code = (
        "import synth.sample, indexer, mme5, synth; "
        "assert indexer.IndexStore.__name__ == 'IndexStore' and str(indexer.DEFAULT_INDEX_DIR) == 'index'; "
        "assert mme5.load_embedder.__module__ == 'mme5.loading' and synth.generate.__module__ == 'synth.run'; "
        "import types; assert type(synth) is types.ModuleType; "  # a plain package, no swapped module class
        "import os; assert os.environ['PYTORCH_ENABLE_MPS_FALLBACK'] == '1'\n"
        "try:\n    indexer.nope\nexcept AttributeError as e:\n    print(e)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "has no attribute 'nope'" in result.stdout
