"""Storage guarantees on the app side: one odd file name or one huge query never breaks search for everyone.

Checked through the engine, the UI handlers and the real app (a subprocess queried with gradio_client).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from search_app.engine import MAX_QUERY_CHARS, SearchEngine
from search_app.thumbnails import ThumbnailCache
from search_app.ui import SearchUI

from .conftest import make_photo, running_app

ODD_NAME = b"caf\xe9.jpg"  # Latin-1 bytes: not valid UTF-8
HUGE_QUERY = "a dog on a beach " * (30 * 2**20 // 17)  # ~30 MB of text


class NoProgress:
    def __call__(self, *args, **kwargs):
        pass

    def tqdm(self, iterable, **kwargs):
        return iterable


@pytest.fixture(scope="module")
def odd_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd") / "photos"
    for seed, name in enumerate(["a.jpg", "b.jpg", "c.jpg"]):
        make_photo(root / name, seed, None)
    make_photo(root / "odd.jpg", 7, None)
    os.rename(root / "odd.jpg", os.path.join(os.fsencode(root), ODD_NAME))
    return root


@pytest.fixture(scope="module")
def odd_engine(odd_library, tiny_mllama, tmp_path_factory):
    from indexer import IndexStore, build_index

    index = tmp_path_factory.mktemp("odd-index") / "idx"
    assert not build_index([odd_library], index, tiny_mllama, show_progress=False).errors
    engine = SearchEngine(IndexStore.open(index), tiny_mllama)
    yield engine
    engine.close()


def test_a_photo_with_a_non_utf8_name_is_found_served_and_shown(odd_engine, odd_library, tmp_path):
    page = odd_engine.search_text("a photo", k=10)
    payload = json.loads(json.dumps(page.to_json()))  # what the API sends: no "surrogates not allowed"
    names = [result["relpath"] for result in payload["results"]]
    assert sorted(names) == ["a.jpg", "b.jpg", "c.jpg", "caf\\xe9.jpg"]
    odd = next(result for result in page.results if result.relpath.startswith("caf"))
    real = odd_engine.servable_path(odd.path)  # served through the path guard by its real bytes
    assert os.fsencode(real) == os.path.join(os.fsencode(odd_library.resolve()), ODD_NAME)

    ui = SearchUI(odd_engine, ThumbnailCache(tmp_path / "thumbs"), page_size=10)
    gallery, status, session, *_ = ui.on_search("a photo", None, "", "", "", "Best match", True, progress=NoProgress())
    captions = [item["caption"] for item in gallery.value]  # as Gradio prepared them for the page
    json.dumps([gallery.value, status])  # every caption and message can travel as JSON
    assert len(captions) == 4 and any(caption.endswith("caf\\xe9.jpg") for caption in captions)
    shown = session.results.index(next(r for r in session.results if r.relpath.startswith("caf")))
    details, *_ = ui.on_select(session, type("Select", (), {"index": shown})())
    assert "caf\\xe9.jpg" in json.loads(json.dumps(details))


def test_a_30_mb_query_is_refused_fast_without_touching_the_model(odd_engine, monkeypatch, tmp_path):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not see an over-long query")

    for name in ("encode_text_queries", "encode_composed", "encode_image_queries"):
        monkeypatch.setattr(odd_engine.embedder, name, no_model)
    photo = str(odd_engine.record(int(odd_engine.store.ids()[0])).path)
    started = time.perf_counter()
    for call in (
        lambda: odd_engine.search_text(HUGE_QUERY),
        lambda: odd_engine.search_composed(photo, HUGE_QUERY),
        lambda: odd_engine.encode_query(text=HUGE_QUERY, image=photo),
    ):
        with pytest.raises(ValueError, match=f"too long .*at most {MAX_QUERY_CHARS:,}"):
            call()
    print(f"3 refusals of a {len(HUGE_QUERY) / 2**20:.0f} MB query took {time.perf_counter() - started:.3f} s")
    ui = SearchUI(odd_engine, ThumbnailCache(tmp_path / "thumbs"))
    status = ui.on_search(HUGE_QUERY, None, "", "", "", "Best match", True, progress=NoProgress())[1]
    assert "too long" in status
    monkeypatch.undo()  # a query of exactly the limit is still searched
    assert odd_engine.search_text("x" * MAX_QUERY_CHARS, k=1).results


@pytest.fixture(scope="module")
def odd_app(tmp_path_factory, odd_library, tiny_mllama_dir):
    """The real app over the odd library, indexing it on first start."""
    work = tmp_path_factory.mktemp("odd-app")
    args = ["--index", str(work / "index"), "--model", str(tiny_mllama_dir), "--photos", str(odd_library)]
    with running_app(work, args, timeout=600) as url:  # first start indexes the photos; CI machines are slow
        yield url, work / "app.log"


@pytest.mark.server
def test_the_app_serves_a_non_utf8_name_and_refuses_a_30_mb_query(odd_app):
    from gradio_client import Client

    url, log = odd_app
    client = Client(url, verbose=False)
    payload = client.predict(text="a photo", k=10, api_name="/search_text")
    assert "caf\\xe9.jpg" in [result["relpath"] for result in payload["results"]]
    started = time.perf_counter()
    with pytest.raises(Exception, match="too long"):
        client.predict(text=HUGE_QUERY, api_name="/search_text")
    print(f"the app refused a {len(HUGE_QUERY) / 2**20:.0f} MB query in {time.perf_counter() - started:.1f} s")
    assert client.predict(text="a photo", k=1, api_name="/search_text")["results"]  # and still answers
    assert "surrogates not allowed" not in log.read_text(errors="replace")


def test_an_album_zip_holds_a_non_utf8_name_and_a_failed_zip_leaves_nothing(
    odd_engine, odd_library, tmp_path, monkeypatch
):
    import dataclasses
    import zipfile

    from search_app.album_views import export_zip, open_album
    from search_app.albums import Albums

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where the page writes its zips
    ui = SearchUI(odd_engine, ThumbnailCache(tmp_path / "thumbs"), page_size=10)
    odd_engine.albums.save("Odd", {"text": "a photo"}, {})
    try:
        button, status = ui.albums.on_make_zip("Odd")
        assert "4 photos" in status, status
        folder = tmp_path / "cache" / "mme5-search" / "albums"
        assert [path.name for path in folder.iterdir()] == ["Odd.zip"]  # no partial file beside it
        with zipfile.ZipFile(button["value"]) as archive:
            assert sorted(archive.namelist()) == ["a.jpg", "b.jpg", "c.jpg", "caf_.jpg"]  # a name every system reads
            assert (
                archive.read("caf_.jpg")
                == (odd_library / "odd.jpg").parent.joinpath(os.fsdecode(ODD_NAME)).read_bytes()
            )

        results = open_album(odd_engine, Albums(odd_engine.store.catalog.path).get("Odd"))
        gone = tmp_path / "gone.jpg"  # a photo deleted while the zip is written
        target = tmp_path / "out" / "album.zip"
        target.parent.mkdir()
        with pytest.raises(FileNotFoundError):
            export_zip([*results, dataclasses.replace(results[0], path=str(gone))], target)
        assert list(target.parent.iterdir()) == []  # neither a zip nor a partial one
    finally:
        odd_engine.albums.delete("Odd")
