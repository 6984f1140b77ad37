"""A running engine picks up builds into its index: new photos found, deleted ones gone, the model kept."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from search_app.engine import IndexChangedError, SearchEngine
from search_app.thumbnails import ThumbnailCache
from search_app.ui import SearchUI

from .conftest import REPO, make_photo
from .test_ui_messages import FILTERS, NoProgress

FIRST = ["a/one.jpg", "a/two.jpg", "b/three.jpg"]
ADDED = ["c/four.jpg", "c/five.jpg"]


def add_photos(root, relpaths, seed=0):
    for offset, relpath in enumerate(relpaths):
        make_photo(root / relpath, seed + offset, None)


def everything(engine):
    """Relpaths of every searchable photo, by way of a real query."""
    return sorted(result.relpath for result in engine.search_text("a photo", k=50, collapse_duplicates=False).results)


@pytest.fixture
def library(tmp_path, tiny_mllama):
    from indexer import build_index

    root = tmp_path / "photos"
    add_photos(root, FIRST)
    build_index([root], tmp_path / "index", tiny_mllama, show_progress=False)
    return root


@pytest.fixture
def engine(library, tiny_mllama, monkeypatch):
    from indexer import IndexStore

    import mme5

    def no_model_loading(*args, **kwargs):
        raise AssertionError("the engine must not load a model when the index changes")

    monkeypatch.setattr(mme5, "load_embedder", no_model_loading)
    engine = SearchEngine(IndexStore.open(library.parent / "index"), tiny_mllama, reload_interval=0)
    yield engine
    engine.close()


def rebuild(library, embedder):
    from indexer import build_index

    return build_index([library], library.parent / "index", embedder, show_progress=False)


def test_photos_added_by_a_build_are_found_by_the_next_query(engine, library, tiny_mllama):
    assert everything(engine) == sorted(FIRST) and engine.stats()["images"] == 3
    add_photos(library, ADDED, seed=10)
    rebuild(library, tiny_mllama)
    assert everything(engine) == sorted(FIRST + ADDED)
    assert engine.stats()["images"] == 5 and engine.embedder is tiny_mllama


def test_a_deleted_photo_disappears_and_its_id_is_unknown(engine, library, tiny_mllama):
    gone = next(r for r in engine.search_text("x", k=50).results if r.relpath == "a/two.jpg")
    (library / "a/two.jpg").unlink()
    rebuild(library, tiny_mllama)
    assert everything(engine) == ["a/one.jpg", "b/three.jpg"] and engine.stats()["images"] == 2
    with pytest.raises(ValueError, match=f"no indexed photo has id {gone.image_id}"):
        engine.record(gone.image_id)


def test_a_moved_photo_is_served_from_its_new_path(engine, library, tiny_mllama):
    before = {r.relpath: r for r in engine.search_text("x", k=50).results}  # fills the record cache
    (library / "d").mkdir()
    shutil.move(library / "a/one.jpg", library / "d/one.jpg")
    rebuild(library, tiny_mllama)
    after = {r.relpath: r for r in engine.search_text("x", k=50).results}
    assert after["d/one.jpg"].image_id == before["a/one.jpg"].image_id  # same content, same id ...
    assert after["d/one.jpg"].path == str(library / "d/one.jpg") and "a/one.jpg" not in after  # ... new path
    assert engine.record(before["a/one.jpg"].image_id).relpath == "d/one.jpg"


def test_a_further_page_of_an_older_ranking_says_the_index_changed(engine, library, tiny_mllama):
    vector = engine.encode_query(text="a photo")
    first = engine.search_text("a photo", k=2)
    second = engine.rank(vector, first_options(first, offset=first.next_offset), generation=first.generation)
    assert second.results and second.generation == first.generation
    add_photos(library, ADDED, seed=10)
    rebuild(library, tiny_mllama)
    with pytest.raises(IndexChangedError, match="index changed since this search.*search again"):
        engine.rank(vector, first_options(first, offset=first.next_offset), generation=first.generation)
    fresh = engine.rank(vector, first_options(first, offset=0))  # a new ranking works, and is newer
    assert fresh.generation > first.generation


def first_options(page, offset):
    from search_app.engine import SearchOptions

    return SearchOptions(**{**page.options, "offset": offset})


def test_the_index_is_looked_at_only_once_per_interval(engine, library, tiny_mllama):
    engine.reload_interval = 3600.0
    engine.search_text("x")  # the interval starts now
    add_photos(library, ADDED, seed=10)
    rebuild(library, tiny_mllama)
    assert engine.stats()["images"] == 3  # not looked at yet: queries stay cheap during a build
    engine.reload_interval = 0
    assert engine.stats()["images"] == 5


@pytest.mark.slow  # a build in another process while the engine serves: 53 s at load average ~10
def test_a_build_in_another_process_is_picked_up(engine, library):
    add_photos(library, ADDED, seed=10)
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    build = subprocess.run(
        [sys.executable, "-m", "indexer", "build", "--index", str(library.parent / "index")],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=REPO,
    )
    assert build.returncode == 0, build.stderr
    assert everything(engine) == sorted(FIRST + ADDED) and engine.stats()["images"] == 5


def test_an_index_rebuilt_with_another_model_is_refused_not_mixed(engine, library, tiny_siglip):
    from indexer import IndexMismatchError

    shutil.rmtree(library.parent / "index")
    rebuild(library, tiny_siglip)
    for _ in range(2):  # and it stays refused: no query may rank in the other model's space
        with pytest.raises(IndexMismatchError, match="rebuilt with another model.*Restart the app"):
            engine.search_text("a photo")
    ui = SearchUI(engine, ThumbnailCache(library.parent / "thumbs"))
    assert "Restart the app" in ui._welcome()
    assert "Restart the app" in ui.on_search("a photo", None, *FILTERS, progress=NoProgress())[1]


def test_ui_footer_and_load_more_follow_the_index(engine, library, tiny_mllama, tmp_path):
    ui = SearchUI(engine, ThumbnailCache(tmp_path / "thumbs"), page_size=2)
    assert ui._footer().startswith("3 photos indexed")
    session = ui.on_search("a photo", None, *FILTERS, progress=NoProgress())[2]
    add_photos(library, ADDED, seed=10)
    rebuild(library, tiny_mllama)
    assert ui._footer().startswith("5 photos indexed") and ui._welcome().startswith("5 photos indexed")
    outputs = ui.on_more(session, [], progress=NoProgress())
    assert "index changed since this search" in outputs[1]
    session = ui.on_search("a photo", None, *FILTERS, progress=NoProgress())[2]
    assert len(ui.on_more(session, [], progress=NoProgress())[2].results) == 4


def test_slow_reopens_space_out_the_next_ones():
    """Reopening a big index during a long build must not take more than ~10 % of the time."""
    from search_app.engine import _slow_reload_gap

    assert _slow_reload_gap(0.01) == 0.0  # small index: the configured interval alone applies
    assert _slow_reload_gap(3.0) == 30.0
