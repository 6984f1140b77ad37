"""Held-out measurement (trainer/heldout.py) without a model: ranks, copies, the query photo, the table."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from trainer.errors import AdaptError
from trainer.heldout import Library, measure, metrics, ranks, table


class Store:
    """What Library reads of an IndexStore: ids and records with a path and a content hash."""

    def __init__(self, root: str, files: list[tuple[str, str | None]]):
        self.rows = {
            number + 1: SimpleNamespace(id=number + 1, path=os.path.join(root, name), content_hash=content)
            for number, (name, content) in enumerate(files)
        }

    def ids(self):
        return list(self.rows)

    def records(self, ids):
        return [self.rows[i] for i in ids]


class Embedder:
    """Queries are encoded through ``encode_query(kind, ...)`` only, as the app encodes them."""

    dim = 3

    def __init__(self, vectors: dict):
        self.vectors, self.calls = vectors, []

    def encode_query(self, kind, texts=None, images=None, batch_size=None, show_progress_bar=False):
        self.calls.append((kind.value, texts, images))
        keys = texts if kind.value == "text" else [os.path.basename(i) for i in images]
        return np.array([self.vectors[k] for k in keys], dtype=np.float32)


@pytest.fixture
def library(tmp_path):
    # b.jpg and b-copy.jpg are byte-identical (same content hash): either is the right answer
    store = Store(str(tmp_path), [("a.jpg", "h-a"), ("b.jpg", "h-b"), ("b-copy.jpg", "h-b"), ("c.jpg", None)])
    return Library(store)


LIBRARY_VECTORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0.9, 0], [0, 0, 1]], dtype=np.float32)


def test_a_copy_of_the_target_counts_and_the_query_photo_is_left_out(library, tmp_path):
    root = str(tmp_path)
    rows = [
        {"pos_image_path": "b-copy.jpg"},  # the copy b.jpg scores best: rank 1
        {"pos_image_path": "c.jpg", "qry_image_path": "a.jpg"},  # a.jpg (the query itself) is not a candidate
        {"pos_image_path": "c.jpg"},
    ]
    queries = np.array([[0, 1, 0], [1, 0, 0.5], [1, 0, 0.5]], dtype=np.float32)
    assert ranks(queries, LIBRARY_VECTORS, rows, root, library) == [1, 1, 2]
    assert library.positions("b.jpg", root) == [1, 2] and library.positions("gone.jpg", root) == []


def test_a_target_no_longer_in_the_index_is_a_clear_error(library, tmp_path):
    with pytest.raises(AdaptError, match="gone.jpg: held-out target photo is no longer in the index"):
        ranks(
            np.ones((1, 3), dtype=np.float32), LIBRARY_VECTORS, [{"pos_image_path": "gone.jpg"}], str(tmp_path), library
        )


def test_metrics_and_table():
    result = metrics([1, 3, 12])
    assert result == {
        "recall@1": 33.33,
        "recall@5": 66.67,
        "recall@10": 66.67,
        "mrr": round((1 + 1 / 3 + 1 / 12) / 3, 4),
        "queries": 3,
    }
    assert metrics([]) == {"queries": 0}
    text = table({"overall": result, "by_language": {"en": result}, "by_task": {"text": result}}, "before")
    assert text.splitlines()[2] == "| all | 3 | 33.3 | 66.7 | 66.7 | 0.472 |"
    assert "| language en |" in text and "| search text |" in text


def test_each_search_mode_is_encoded_as_its_query_kind(library, tmp_path):
    embedder = Embedder({"a dog": [0, 0, 1], "a.jpg": [1, 0, 0], "c.jpg": [0, 0.5, 1]})
    rows = [
        {"modality": "T->I", "query_text": "a dog", "qry_image_path": "", "pos_image_path": "c.jpg", "language": "en"},
        {"modality": "I->I", "qry_image_path": "c.jpg", "pos_image_path": "b-copy.jpg", "language": "de"},
        {
            "modality": "IT->I",
            "qry_image_path": "a.jpg",
            "query_text": "a dog",
            "pos_image_path": "c.jpg",
            "language": "en",
        },
    ]
    result = measure(embedder, LIBRARY_VECTORS, library, rows, str(tmp_path), show_progress=False)
    assert sorted(call[0] for call in embedder.calls) == ["composed", "image", "text"]
    composed = next(call for call in embedder.calls if call[0] == "composed")
    assert composed[1] == ["a dog"] and composed[2] == [os.path.join(str(tmp_path), "a.jpg")]
    assert set(result["by_task"]) == {"text", "image", "composed"}
    # c.jpg itself would score best: left out, b.jpg (a copy of the target) is first
    assert result["by_task"]["image"]["recall@1"] == 100.0
    assert result["by_language"]["en"]["queries"] == 2 and result["library"] == 4
