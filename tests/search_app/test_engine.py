"""SearchEngine on the tiny model: every query type, pagination, filters, sorting, duplicates, path safety."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search_app.engine import SearchEngine, SearchOptions
from search_app.paths import PathGuard, PathNotAllowedError

from .conftest import COPY_OF_RED, LIBRARY, make_photo

UNIQUE = len(LIBRARY)  # the copy of red.jpg collapses into it


def ids(page):
    return [result.image_id for result in page.results]


def relpaths(page):
    return [result.relpath for result in page.results]


def test_text_query_in_several_scripts_ranks_whole_library(engine):
    for text in ["a red photo", "кошка на диване", "沙发上的猫", "قطة على الأريكة"]:
        page = engine.search_text(text, k=50)
        assert len(page.results) == UNIQUE and page.next_offset is None
        scores = [result.score for result in page.results]
        assert scores == sorted(scores, reverse=True)
        assert len(set(ids(page))) == UNIQUE
    first = page.results[0]
    assert Path(first.path).is_file() and first.size == Path(first.path).stat().st_size
    assert len(first.content_hash) > 8 and page.query_seconds > 0


def test_scores_are_the_cosine_with_the_stored_vectors(engine, tiny_mllama):
    page = engine.search_text("a red photo", k=5)
    query = tiny_mllama.encode_text_queries(["a red photo"])[0]
    stored = engine.store.vectors(np.asarray(ids(page), dtype=np.int64))
    np.testing.assert_allclose([r.score for r in page.results], stored @ query, atol=2e-3)  # float16 on disk


def test_image_query_finds_the_same_photo_first(engine, library):
    page = engine.search_image(str(library / "2024/green.jpg"), k=3)
    assert page.results[0].relpath == "2024/green.jpg"
    pil = engine.search_image(Image.open(library / "2024/green.jpg"), k=3)
    assert ids(pil) == ids(page)


def test_composed_query_differs_from_image_only_and_respects_options(engine, library):
    image = str(library / "2024/green.jpg")
    composed = engine.search_composed(image, "but at night", k=UNIQUE)
    plain = engine.search_image(image, k=UNIQUE)
    assert [r.score for r in composed.results] != pytest.approx([r.score for r in plain.results])
    filtered = engine.search_composed(image, "но ночью", k=5, folder="misc")
    assert filtered.results and all(r.relpath.startswith("misc/") for r in filtered.results)


def test_similar_by_id_uses_the_indexed_photo(engine):
    green = next(r for r in engine.search_text("x", k=50).results if r.relpath == "2024/green.jpg")
    assert engine.search_similar(green.image_id, k=1).results[0].image_id == green.image_id
    with pytest.raises(ValueError, match="no indexed photo has id 987654"):
        engine.search_similar(987654)


@pytest.mark.parametrize("sort", ["score", "date", "date_asc"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_pages_have_no_overlap_and_no_gaps(engine, k, sort):
    everything = engine.search_text("a photo of the sea", k=50, sort=sort)
    collected, offset, pages = [], 0, 0
    while offset is not None:
        page = engine.search_text("a photo of the sea", k=k, offset=offset, sort=sort)
        assert page.offset == offset and len(page.results) <= k
        collected += ids(page)
        offset, pages = page.next_offset, pages + 1
    assert collected == ids(everything)
    assert len(collected) == len(set(collected)) == UNIQUE
    assert pages == -(-UNIQUE // k)


def test_offset_past_the_end_is_an_empty_last_page(engine):
    page = engine.search_text("anything", k=5, offset=500)
    assert page.results == [] and page.next_offset is None


def test_folder_filter_matches_whole_folder_names(engine, library):
    assert sorted(relpaths(engine.search_text("x", k=50, folder="2024"))) == [
        "2024/green.jpg",
        "2024/purple.png",
        "2024/yellow.jpg",
    ]
    assert relpaths(engine.search_text("x", k=50, folder="20241/")) == ["20241/cyan.jpg"]
    assert sorted(relpaths(engine.search_text("x", k=50, folder="2023/beach"))) == [
        "2023/beach/orange.jpg",
        "2023/beach/red.jpg",
    ]
    absolute = engine.search_text("x", k=50, folder=str(library / "2023"))
    assert sorted(relpaths(absolute)) == ["2023/beach/orange.jpg", "2023/beach/red.jpg", "2023/city/blue.jpg"]
    assert engine.search_text("x", k=50, folder="no/such/folder").results == []
    for spelling in ["./2023/beach/", "2023//beach", "2023\\beach", " 2023/beach "]:
        assert sorted(relpaths(engine.search_text("x", k=50, folder=spelling))) == [
            "2023/beach/orange.jpg",
            "2023/beach/red.jpg",
        ], spelling
    assert len(engine.search_text("x", k=50, folder=".").results) == UNIQUE
    with pytest.raises(ValueError, match="points outside the indexed folders"):
        engine.search_text("x", folder="../elsewhere")


def test_date_range_is_inclusive_and_skips_undated(engine):
    page = engine.search_text("x", k=50, date_from="2023-07-15", date_to="2024-03-01")
    assert sorted(relpaths(page)) == [
        "2023/beach/orange.jpg",
        "2023/city/blue.jpg",
        "2024/green.jpg",
        "2024/yellow.jpg",
    ]
    same = engine.search_text("x", k=50, date_from=date(2023, 7, 15), date_to=datetime(2024, 3, 1, 23, 59, 59))
    assert ids(same) == ids(page)
    evening = engine.search_text("x", k=50, date_from="2024-03-01T12:00", date_to="2024-03-01")
    assert relpaths(evening) == ["2024/yellow.jpg"]
    assert all(r.taken_at is not None for r in engine.search_text("x", k=50, date_from="1990-01-01").results)


def test_sort_by_date_newest_and_oldest_first_with_undated_last(engine):
    newest = engine.search_text("x", k=50, sort="date", collapse_duplicates=False)
    dated = [r.taken_at for r in newest.results if r.taken_at]
    assert dated == sorted(dated, reverse=True) and len(dated) == 7  # 6 dated photos + the copy of red.jpg
    assert all(r.taken_at is None for r in newest.results[len(dated) :])
    oldest = engine.search_text("x", k=50, sort="date_asc")
    assert [r.taken_at for r in oldest.results if r.taken_at] == sorted(
        r.taken_at for r in oldest.results if r.taken_at
    )
    assert oldest.results[0].relpath in ("2023/beach/red.jpg", COPY_OF_RED)


def test_identical_copies_collapse_into_one_result(engine):
    collapsed = engine.search_text("red", k=50)
    expanded = engine.search_text("red", k=50, collapse_duplicates=False)
    assert len(expanded.results) == UNIQUE + 1 and len(collapsed.results) == UNIQUE
    red = [r for r in collapsed.results if r.relpath in ("2023/beach/red.jpg", COPY_OF_RED)]
    assert len(red) == 1 and len(red[0].also_at) == 1
    assert {red[0].relpath, Path(red[0].also_at[0]).relative_to(Path(red[0].path).parents[2]).as_posix()} == {
        "2023/beach/red.jpg",
        COPY_OF_RED,
    }
    hashes = [r.content_hash for r in collapsed.results]
    assert len(hashes) == len(set(hashes))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"k": 0}, "k must be"),
        ({"k": 10_000}, "k must be"),
        ({"offset": -1}, "offset must be"),
        ({"sort": "random"}, "sort must be one of"),
        ({"date_from": "last week"}, "is not a date"),
        ({"date_from": "2024-05-02", "date_to": "2024-05-01"}, "is after date_to"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(engine, options, message):
    with pytest.raises(ValueError, match=message):
        engine.search_text("x", **options)


def test_bad_queries_are_refused_with_a_clear_message(engine, tmp_path):
    with pytest.raises(ValueError, match="query text is empty"):
        engine.search_text("   ")
    with pytest.raises(ValueError, match="No image given"):
        engine.search_image(None)
    with pytest.raises(ValueError, match="modifying text is empty"):
        engine.search_composed(str(tmp_path), "")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        engine.search_image(str(broken))


def test_options_parse_accepts_what_gradio_sends():
    options = SearchOptions.parse(k=np.int64(5), offset=0, folder="  ", date_from="", date_to=None)
    assert options.k == 5 and options.folder is None and options.date_from is None


def test_a_different_model_is_refused_at_start(index_dir, tiny_siglip):
    from indexer import IndexMismatchError, IndexStore

    store = IndexStore.open(index_dir)
    try:
        with pytest.raises(IndexMismatchError):
            SearchEngine(store, tiny_siglip)
    finally:
        store.close()


def test_open_loads_the_model_the_index_was_built_with(index_dir):
    engine = SearchEngine.open(index_dir, device="cpu")
    try:
        assert engine.stats()["images"] == UNIQUE + 1 and engine.stats()["dim"] == engine.embedder.dim
        assert engine.search_text("ein Hund", k=2).results
    finally:
        engine.close()


# -- path safety ----------------------------------------------------------------------------------------
def test_guard_refuses_paths_outside_the_roots(library, outside_dir):
    guard = PathGuard([library])
    assert guard.check(library / "2024/green.jpg") == (library / "2024/green.jpg").resolve()
    for bad in [
        outside_dir / "secret.jpg",
        library / ".." / ".." / outside_dir.name / "secret.jpg",
        str(library) + "/2024/../../" + outside_dir.name + "/secret.txt",
        "/etc/passwd",
        "",
        "a\x00b",
        str(library) + "-sibling/x.jpg",
    ]:
        with pytest.raises(PathNotAllowedError):
            guard.check(bad)


def test_guard_resolves_symlinks(library, outside_dir, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.jpg").symlink_to(outside_dir / "secret.jpg")
    (root / "linkdir").symlink_to(outside_dir, target_is_directory=True)
    (root / "inside.jpg").symlink_to(library / "2024/green.jpg")
    guard = PathGuard([root])
    for trap in [root / "link.jpg", root / "linkdir" / "secret.txt"]:
        with pytest.raises(PathNotAllowedError, match="outside the indexed folders"):
            guard.check(trap)
    with pytest.raises(PathNotAllowedError):
        guard.check(root / "inside.jpg")  # inside a root by name, but its target is elsewhere
    assert PathGuard([root, library]).allows(root / "inside.jpg")


def test_a_photo_swapped_for_a_symlink_after_indexing_is_never_returned(tiny_mllama, outside_dir, tmp_path):
    from indexer import IndexStore, build_index

    root = tmp_path / "photos"
    make_photo(root / "a.jpg", 1, None)
    make_photo(root / "b.jpg", 2, None)
    build_index([root], tmp_path / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama)
    try:
        b = next(r for r in engine.search_text("x", k=5).results if r.relpath == "b.jpg")
        (root / "b.jpg").unlink()
        os.symlink(outside_dir / "secret.jpg", root / "b.jpg")
        assert relpaths(engine.search_text("x", k=5)) == ["a.jpg"]
        with pytest.raises(PathNotAllowedError):
            engine.servable_path(root / "b.jpg")
        with pytest.raises(PathNotAllowedError):
            engine.search_similar(b.image_id)
    finally:
        engine.close()


@pytest.mark.parametrize("window", [1, 2, 3])
def test_growing_candidate_windows_give_the_same_pages(engine, window, monkeypatch):
    """With a window smaller than the index, filters, copies and score ties must not shift pages."""
    full = {
        key: ids(engine.search_text("sunset", k=50, **options))
        for key, options in {
            "plain": {},
            "copies": {"collapse_duplicates": False},
            "folder": {"folder": "misc"},
            "dated": {"date_from": "2023-01-01"},
            "date": {"sort": "date"},
        }.items()
    }
    monkeypatch.setattr(engine, "min_window", window)
    for key, options in {
        "plain": {},
        "copies": {"collapse_duplicates": False},
        "folder": {"folder": "misc"},
        "dated": {"date_from": "2023-01-01"},
        "date": {"sort": "date"},
    }.items():
        collected, offset = [], 0
        while offset is not None:
            page = engine.search_text("sunset", k=1, offset=offset, **options)
            collected += ids(page)
            offset = page.next_offset
        assert collected == full[key], key


def test_an_empty_index_answers_with_no_results(tiny_mllama, tmp_path):
    from indexer import IndexStore, build_index

    (tmp_path / "empty").mkdir()
    build_index([tmp_path / "empty"], tmp_path / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama)
    try:
        page = engine.search_text("anything at all", k=5)
        assert page.results == [] and page.next_offset is None and engine.stats()["images"] == 0
    finally:
        engine.close()


# -- filters restricted up front ----------------------------------------------------------------------------
def by_hand(engine, text, keep, collapse_duplicates=True):
    """The unfiltered ranking with ``keep`` applied afterwards (and identical copies folded by hand)."""
    results = [r for r in engine.search_text(text, k=50, collapse_duplicates=False).results if keep(r)]
    if collapse_duplicates:
        seen = set()
        results = [r for r in results if not (r.content_hash in seen or seen.add(r.content_hash))]
    return results


FILTERS = {
    "rare folder": ({"folder": "2023/city"}, lambda r: r.relpath.startswith("2023/city/")),
    "folder": ({"folder": "2024"}, lambda r: r.relpath.startswith("2024/")),
    "narrow dates": (
        {"date_from": "2024-03-01", "date_to": "2024-03-01"},
        lambda r: r.taken_at is not None and r.taken_at.date() == date(2024, 3, 1),
    ),
    "folder and dates": (
        {"folder": "2023", "date_to": "2023-07-31"},
        lambda r: r.relpath.startswith("2023/") and r.taken_at is not None and r.taken_at < datetime(2023, 8, 1),
    ),
    "copies folder": ({"folder": "copies"}, lambda r: r.relpath.startswith("copies/")),
}


@pytest.mark.parametrize("few_matches", [10_000, 0], ids=["restricted", "filtered-as-they-come"])
@pytest.mark.parametrize("name", FILTERS)
def test_filtered_results_equal_the_unfiltered_ranking_filtered_by_hand(engine, name, few_matches, monkeypatch):
    import search_app.ranking as ranking_module

    monkeypatch.setattr(ranking_module, "FEW_MATCHES", few_matches)
    options, keep = FILTERS[name]
    for collapse in (True, False):
        expected = by_hand(engine, "a quiet street", keep, collapse)
        page = engine.search_text("a quiet street", k=50, collapse_duplicates=collapse, **options)
        assert ids(page) == [r.image_id for r in expected] and expected, (name, collapse)
        np.testing.assert_allclose([r.score for r in page.results], [r.score for r in expected], rtol=1e-5)
        assert [r.also_at for r in page.results] == [()] * len(expected)  # copies elsewhere are not folded in
        collected, offset = [], 0
        while offset is not None:  # one photo per page: no overlap, no gap
            one = engine.search_text("a quiet street", k=1, offset=offset, collapse_duplicates=collapse, **options)
            collected += ids(one)
            offset = one.next_offset
        assert collected == ids(page)
    by_date = engine.search_text("a quiet street", k=50, sort="date", **options)
    assert sorted(ids(by_date)) == sorted(ids(page))


def test_rare_folder_and_narrow_dates_return_exactly_their_photos_best_first(engine, tiny_mllama):
    query = tiny_mllama.encode_text_queries(["a blue car at night"])[0]
    for options, wanted in [
        ({"folder": "2023/beach"}, {"2023/beach/red.jpg", "2023/beach/orange.jpg"}),
        ({"date_from": "2024-03-01T12:00", "date_to": "2024-12-31"}, {"2024/yellow.jpg", "20241/cyan.jpg"}),
    ]:
        page = engine.search_text("a blue car at night", k=10, **options)
        assert set(relpaths(page)) == wanted and page.next_offset is None
        stored = engine.store.vectors(np.asarray(ids(page), dtype=np.int64)) @ query
        assert list(np.argsort(-stored, kind="stable")) == list(range(len(wanted)))  # best first
        np.testing.assert_allclose([r.score for r in page.results], stored, atol=2e-3)


def test_a_rare_folder_query_reads_only_that_folders_records(index_dir, tiny_mllama, monkeypatch):
    """The search is restricted before ranking: no catalog record outside the folder is fetched or scored."""
    from indexer import IndexStore

    engine = SearchEngine(IndexStore.open(index_dir), tiny_mllama)
    try:
        fetched, hits = [], []
        records, search = engine.store.records, engine.store.search
        monkeypatch.setattr(engine.store, "records", lambda wanted: fetched.extend(wanted) or records(wanted))

        def recording_search(vector, k, among=None):
            scores, found = search(vector, k, among=among)
            hits.extend(int(i) for i in found[0] if i >= 0)
            return scores, found

        monkeypatch.setattr(engine.store, "search", recording_search)
        page = engine.search_text("x", k=1, folder="2023/city")
        assert relpaths(page) == ["2023/city/blue.jpg"] and page.next_offset is None
        assert hits == ids(page) and [int(i) for i in fetched] == ids(page)
    finally:
        engine.close()
