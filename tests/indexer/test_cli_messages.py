"""What `python -m indexer` prints when it refuses: real line breaks, the plain sentence first, nothing left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def indexer(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "indexer", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # runs the CLI in subprocesses (model loads each time)
def test_a_missing_model_prints_real_line_breaks_and_leaves_no_index_folder(photos, user_env):
    photos.jpeg("a.jpg")
    index = Path(user_env["HOME"]) / "new-index"
    result = indexer(user_env, "build", "--dir", photos.folder, "--index", index, "--model", "nobody/no-such-model")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("indexer: error: "))
    assert lines[at].startswith("indexer: error: Could not load model 'nobody/no-such-model'"), lines
    assert lines[at + 1].startswith("It is not a local folder"), lines  # was "...\nIt is not..." on one line
    assert "\\n" not in result.stderr
    assert not index.exists()  # was: a folder holding only .lock

    index.mkdir()  # an existing (empty) folder is left as it was
    result = indexer(user_env, "build", "--dir", photos.folder, "--index", index, "--model", "nobody/no-such-model")
    assert result.returncode == 1 and index.is_dir() and list(index.iterdir()) == []


@pytest.mark.slow  # runs the CLI in subprocesses (model loads each time)
def test_the_wrong_model_refusal_leads_with_the_sentence_and_lists_identities_after(
    photos, tmp_path, tiny_siglip_dir, tiny_mllama_dir, user_env
):
    photos.jpeg("a.jpg")
    index = tmp_path / "index"
    assert (
        indexer(
            user_env, "build", "--dir", photos.folder, "--index", index, "--model", tiny_siglip_dir, "--quiet"
        ).returncode
        == 0
    )
    result = indexer(user_env, "search", "--index", index, "--model", tiny_mllama_dir, "--text", "x")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    first, *details = lines[next(i for i, line in enumerate(lines) if line.startswith("indexer: error: ")) :]
    assert first == (
        f"indexer: error: {index}: this index was built with a different model than the one given; "
        "vectors from different models cannot be mixed. Use the index's own model (omit --model and "
        "--runtime), or build a new index with --index NEW_DIR."
    )
    assert details[0] == f"  index built with: {tiny_siglip_dir}"
    assert details[1] == f"  model given:      {tiny_mllama_dir}"
    assert details[2].startswith("  they differ in: ") and "model" in details[2]
    assert [line.split(":")[0] for line in details[3:]] == ["  index's vector space", "  given vector space"]
    assert all(len(line) < 200 for line in details), details


@pytest.mark.slow  # runs the CLI in subprocesses (model loads each time)
def test_build_and_info_count_the_same_errors_and_a_rescan_finds_none(photos, tmp_path, tiny_siglip_dir, user_env):
    import json
    import os

    photos.jpeg("good.jpg")
    photos.raw("empty.jpg", b"")
    photos.raw("notes.jpg", b"shopping list\n" * 20)
    photos.jpeg("sub/inner.jpg", seed=3)
    os.symlink(photos.folder, photos.path("sub/back-to-top"))  # a folder loop: skipped, recorded nowhere
    index = tmp_path / "index"
    args = ("build", "--dir", photos.folder, "--index", index, "--model", tiny_siglip_dir, "--quiet")
    first = indexer(user_env, *args)
    assert first.returncode == 0, first.stderr
    assert ", errors 2, skipped 1 in " in first.stdout, first.stdout
    info = indexer(user_env, "info", "--index", index)
    assert "2 searchable, 2 with errors" in info.stdout and "errors 2, skipped 1 in " in info.stdout, info.stdout
    again = indexer(user_env, *args, "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["unchanged"], summary["error_count"], summary["skipped_count"]) == (4, 0, 1), summary
