"""The run folder: torn last lines, corrupt lines, leftovers of a kill, settings checks."""

from __future__ import annotations

import json

import pytest

from synth.output import MANIFEST, RunFolder, RunFolderError

SETTINGS = {"seed": 0, "model": "m", "prices": [1.0, 2.0], "base_url": "http://a/v1"}


def test_torn_last_line_is_cut_and_complete_lines_kept(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert folder.start(SETTINGS) is False
    folder.add_sample({"sample_id": "s0-00000000", "qry": "één"})
    folder.close()
    with open(folder.samples_path, "ab") as handle:
        handle.write('{"sample_id": "s0-0000000'.encode())
    assert [row["sample_id"] for row in folder.samples()] == ["s0-00000000"]  # readers skip it
    assert RunFolder(tmp_path / "run").start(SETTINGS) is True  # writers cut it
    assert folder.samples_path.read_bytes().endswith(b"}\n")
    assert folder.samples_path.read_text(encoding="utf-8").count("\n") == 1


def test_a_file_that_is_one_torn_line_becomes_empty(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.start(SETTINGS)
    folder.failures_path.write_bytes(b'{"sample_id": "s0-0')
    RunFolder(tmp_path / "run").start(SETTINGS)
    assert folder.failures_path.read_bytes() == b"" and list(folder.failures()) == []


def test_corrupt_middle_line_is_reported_with_its_number(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.start(SETTINGS)
    folder.samples_path.write_text('{"sample_id": "a"}\nnot json\n{"sample_id": "b"}\n', encoding="utf-8")
    with pytest.raises(RunFolderError, match=r"samples.jsonl:2: corrupt line"):
        list(folder.samples())


def test_prices_and_server_may_change_on_resume_but_not_the_seed(tmp_path):
    RunFolder(tmp_path / "run").start(SETTINGS)
    moved = dict(SETTINGS, prices=[3.0, 4.0], base_url="http://b/v1")
    assert RunFolder(tmp_path / "run").start(moved) is True
    assert json.loads((tmp_path / "run" / "run.json").read_text())["prices"] == [3.0, 4.0]
    with pytest.raises(RunFolderError, match="seed: was 0, now 1"):
        RunFolder(tmp_path / "run").start(dict(SETTINGS, seed=1))


def test_foreign_folder_refused_but_a_killed_first_start_is_not(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(RunFolderError, match="not empty and holds no synth run"):
        RunFolder(tmp_path / "photos").start(SETTINGS)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / f".{MANIFEST}.k9x2ab.tmp").write_text('{"seed": ')  # a manifest write a kill interrupted
    (tmp_path / "run" / "index").mkdir()
    assert RunFolder(tmp_path / "run").start(SETTINGS) is False
    assert RunFolder(tmp_path / "run").manifest() == SETTINGS
