"""load_examples: every source layout, safe negative parsing, bad rows skipped and counted."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from trainer.data import DataError, Example, load_examples, parse_list


@pytest.fixture()
def image_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("q.png", "p.png", "n1.png", "n2.png"):
        Image.new("RGB", (8, 8), "red").save(folder / name)
    (folder / "empty.png").write_bytes(b"")
    return folder


def row(**overrides):
    base = {
        "qry": "<|image_1|>\nRepresent the given image with the following question: what colour?",
        "qry_image_path": "q.png",
        "pos_text": "red",
        "pos_image_path": "",
        "neg_text": "['blue', 'green']",
        "neg_image_path": "['', '']",
    }
    base.update(overrides)
    return base


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_rows_resolve_images_keep_placeholders_and_pad_negatives(tmp_path, image_dir):
    source = write_jsonl(tmp_path / "d.jsonl", [row()])
    data = load_examples([str(source)], str(image_dir), negative_ratio=3)
    assert len(data) == 1 and not data.skipped
    example = data[0]
    assert isinstance(example, Example)
    assert example.qry.startswith("<|image_1|>\n")
    assert example.qry_image_path == str(image_dir / "q.png")
    assert example.pos_image_path is None
    assert example.neg_texts == ["blue", "green", "green"]  # padded by repeating the last one
    assert example.neg_image_paths == [None, None, None]


def test_negatives_truncated_and_list_columns_accepted(tmp_path, image_dir):
    source = write_jsonl(
        tmp_path / "d.jsonl", [row(neg_text=["a", "b", "c", "d"], neg_image_path=["n1.png", "n2.png", "", ""])]
    )
    example = load_examples([str(source)], str(image_dir), negative_ratio=2)[0]
    assert example.neg_texts == ["a", "b"]
    assert example.neg_image_paths == [str(image_dir / "n1.png"), str(image_dir / "n2.png")]


def test_negative_literal_is_never_evaluated(tmp_path, image_dir):
    marker = tmp_path / "pwned"
    evil = f"[__import__('pathlib').Path({str(marker)!r}).touch()]"
    source = write_jsonl(tmp_path / "d.jsonl", [row(neg_text=evil), row()])
    data = load_examples([str(source)], str(image_dir))
    assert not marker.exists()
    assert len(data) == 1 and data.skipped == {"unparsable negative list": 1}


def test_parse_list_accepts_literals_and_rejects_code():
    assert parse_list("['a', \"b\"]", "x") == ["a", "b"]
    assert parse_list("", "x") == []
    assert parse_list("just text", "x") == ["just text"]
    with pytest.raises(ValueError, match="neg_text is not a list literal"):
        parse_list("[open('x')]", "neg_text")


def test_bad_rows_are_skipped_and_counted(tmp_path, image_dir):
    rows = [
        row(),
        row(qry_image_path="nope.png"),
        row(pos_image_path="empty.png", pos_text=""),
        row(qry="<|image_1|>\n", qry_image_path=""),
        row(pos_text="   "),
        row(neg_image_path="['gone.png']"),
    ]
    source = write_jsonl(tmp_path / "d.jsonl", rows)
    (source.parent / "d.jsonl").open("a").write("{not json\n")
    data = load_examples([str(source)], str(image_dir))
    assert len(data) == 1
    assert data.skipped == {
        "missing query image": 1,
        "missing positive image": 1,
        "empty query": 1,
        "empty positive": 1,
        "missing negative image": 1,
        "unparsable JSON line (d.jsonl:7: Expecting property name enclosed in double quotes)": 1,
    }


def test_empty_negative_text_replaced_and_no_negatives_allowed(tmp_path, image_dir):
    source = write_jsonl(tmp_path / "d.jsonl", [row(neg_text="['', 'x']"), row(neg_text="[]", neg_image_path="[]")])
    data = load_examples([str(source)], str(image_dir), negative_ratio=2)
    assert data[0].neg_texts == ["x", "x"]
    assert data[1].neg_texts == [] and data[1].neg_image_paths == []


def test_datasets_dir_and_dataset_dict(tmp_path, image_dir):
    import datasets

    flat = datasets.Dataset.from_list([row(), row(pos_text="scarlet")])
    flat.save_to_disk(str(tmp_path / "flat"))
    datasets.DatasetDict({"train": flat}).save_to_disk(str(tmp_path / "dict"))
    data = load_examples([str(tmp_path / "flat"), str(tmp_path / "dict")], str(image_dir))
    assert [e.pos_text for e in data] == ["red", "scarlet", "red", "scarlet"]


def test_unreadable_sources_fail_clearly(tmp_path, image_dir):
    with pytest.raises(DataError, match="not found"):
        load_examples([str(tmp_path / "missing.jsonl")], str(image_dir))
    (tmp_path / "notdata").mkdir()
    with pytest.raises(DataError, match="not a datasets folder"):
        load_examples([str(tmp_path / "notdata")], str(image_dir))
    with pytest.raises(DataError, match="image folder not found"):
        load_examples([str(tmp_path / "notdata")], str(tmp_path / "noimages"))
    import datasets

    datasets.Dataset.from_list([{"text": "x"}]).save_to_disk(str(tmp_path / "wrong"))
    with pytest.raises(DataError, match="missing column"):
        load_examples([str(tmp_path / "wrong")], str(image_dir))


def test_parquet_files_and_hub_download_folders(tmp_path, image_dir):
    import datasets

    download = tmp_path / "mmE5-synthetic"
    (download / "Retrieval").mkdir(parents=True)
    datasets.Dataset.from_list([row(), row(pos_text="crimson")]).to_parquet(
        str(download / "Retrieval" / "train.parquet")
    )
    datasets.Dataset.from_list([row(pos_text="ruby")]).to_parquet(str(tmp_path / "extra.parquet"))
    data = load_examples([str(download), str(tmp_path / "extra.parquet")], str(image_dir))
    assert [e.pos_text for e in data] == ["red", "crimson", "ruby"]


def test_unreachable_hub_dataset_says_what_to_do(image_dir):
    with pytest.raises(
        DataError,
        match=r"someone/no-such-data:Retrieval: could not load hub dataset .*Offline\? .*--local-dir DIR`\) and pass DIR",
    ):
        load_examples(["someone/no-such-data:Retrieval"], str(image_dir))
