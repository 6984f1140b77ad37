"""Export: a datasets folder that loads with ``datasets`` and feeds the trainer's data loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .synth_answers import answer_for
from .synth_fake_openai import FakeOpenAI, ok
from synth.cli import main
from synth.records import INSPECTION_COLUMNS, METADATA_COLUMNS, SCHEMA_COLUMNS


@pytest.fixture(scope="module")
def run(index_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    with FakeOpenAI(lambda request, number: ok(answer_for(request, number))) as server:
        assert (
            main(
                [
                    "generate",
                    "--index",
                    str(index_dir),
                    "--out",
                    str(out),
                    "--n",
                    "24",
                    "--base-url",
                    server.url,
                    "--model",
                    "fake-4o",
                    "--languages",
                    "en,de,fr,es,ja",
                    "--no-progress",
                ]
            )
            == 0
        )
    return out


def test_export_loads_with_datasets(run, tmp_path):
    import datasets

    target = tmp_path / "data"
    assert main(["export", str(run), str(target)]) == 0
    dataset = datasets.load_from_disk(str(target))
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(dataset) == len(rows) == 24
    assert dataset.column_names == list(SCHEMA_COLUMNS + METADATA_COLUMNS + INSPECTION_COLUMNS)
    assert dataset[0]["qry"] == rows[0]["qry"] and dataset[0]["neg_text"] == rows[0]["neg_text"]
    assert dataset.features["seed"].dtype == "int64"
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_feeds_the_trainer_data_loader(run, tmp_path):
    from trainer.data import load_examples

    target = tmp_path / "data"
    assert main(["export", str(run), str(target), "--no-inspection"]) == 0
    image_root = json.loads((run / "run.json").read_text())["image_root"]
    examples = load_examples([str(target)], image_dir=image_root, negative_ratio=3)
    assert len(examples) == 24 and not examples.skipped
    for example in examples:
        assert example.qry and len(example.neg_texts) == len(example.neg_image_paths) == 3  # padded as mmE5 does
        for path in (example.qry_image_path, example.pos_image_path, *example.neg_image_paths):
            assert path is None or Path(path).is_file()
    assert sum(example.qry_image_path is not None for example in examples) > 0
    # the run's JSONL is a valid trainer source too
    assert len(load_examples([str(run / "samples.jsonl")], image_dir=image_root)) == 24


def test_overwrite_replaces_the_whole_folder(run, tmp_path):
    import datasets

    target = tmp_path / "data"
    target.mkdir()
    (target / "stale.arrow").write_text("old")
    assert main(["export", str(run), str(target), "--overwrite", "--no-inspection"]) == 0
    assert not (target / "stale.arrow").exists() and len(datasets.load_from_disk(str(target))) == 24
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]


def test_export_refuses_to_overwrite_and_needs_samples(run, tmp_path, capsys):
    target = tmp_path / "data"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["export", str(run), str(target)]) == 1
    assert "--overwrite" in capsys.readouterr().err and (target / "keep.txt").exists()
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 1
    assert "not a synth output folder" in capsys.readouterr().err
