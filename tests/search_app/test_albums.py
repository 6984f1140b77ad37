"""Albums (saved searches) in the index's own database: re-run on opening, pins, export, and crash safety."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from search_app.album_views import export, export_zip, open_album
from search_app.albums import Albums
from search_app.engine import SearchEngine

from .conftest import REPO, make_photo


@pytest.fixture
def setup(tmp_path, tiny_mllama):
    from indexer import IndexStore, build_index

    root = tmp_path / "photos"
    for n, relpath in enumerate(["trip/a.jpg", "trip/b.jpg", "home/c.jpg", "home/d.jpg"]):
        make_photo(root / relpath, n, None)
    build_index([root], tmp_path / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama, reload_interval=0)
    albums = Albums(tmp_path / "index" / "catalog.sqlite")
    yield root, engine, albums
    albums.close()
    engine.close()


def names(results):
    return sorted(result.relpath for result in results)


def test_an_album_reruns_its_search_so_new_photos_appear(setup, tiny_mllama):
    from indexer import build_index

    root, engine, albums = setup
    album = albums.save("Trip", {"text": "a trip"}, {"folder": "trip"})
    assert names(open_album(engine, album)) == ["trip/a.jpg", "trip/b.jpg"]
    make_photo(root / "trip/e.jpg", 9, None)
    build_index([root], root.parent / "index", tiny_mllama, show_progress=False)
    assert names(open_album(engine, albums.get("Trip"))) == ["trip/a.jpg", "trip/b.jpg", "trip/e.jpg"]
    assert albums.names() == ["Trip"]


def test_pins_and_removals(setup):
    _, engine, albums = setup
    albums.save("Trip", {"text": "a trip"}, {"folder": "trip"})
    ids = {r.relpath: r.image_id for r in engine.search_text("x", k=10).results}
    albums.pin("Trip", ids["home/c.jpg"])
    albums.pin("Trip", ids["trip/a.jpg"], pinned=False)
    results = open_album(engine, albums.get("Trip"))
    assert results[0].relpath == "home/c.jpg" and names(results) == ["home/c.jpg", "trip/b.jpg"]
    albums.unpin("Trip", ids["trip/a.jpg"])
    albums.unpin("Trip", ids["home/c.jpg"])
    assert names(open_album(engine, albums.get("Trip"))) == ["trip/a.jpg", "trip/b.jpg"]
    with pytest.raises(ValueError, match="no album called “Beach” \\(there are: Trip\\)"):
        albums.get("Beach")
    with pytest.raises(ValueError, match="needs a query"):
        albums.save("Empty", {"text": "  "}, {})


def test_export_as_links_copies_and_zip(setup, tmp_path):
    _, engine, albums = setup
    results = open_album(engine, albums.save("Home", {"text": "home"}, {"folder": "home"}))
    links = export(results, tmp_path / "links")
    assert sorted(p.name for p in links) == ["c.jpg", "d.jpg"] and all(p.is_symlink() for p in links)
    copies = export(results, tmp_path / "copies", copy=True)
    assert all(not p.is_symlink() and p.read_bytes() == open(r.path, "rb").read() for p, r in zip(copies, results))
    archive = export_zip(results, tmp_path / "home.zip")
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == ["c.jpg", "d.jpg"]
    cli = subprocess.run(
        [sys.executable, "-m", "search_app.albums", "list", "--index", str(tmp_path / "index")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert cli.returncode == 0 and cli.stdout.split() == ["Home"]


def test_export_copies_where_links_cannot_be_made(setup, tmp_path, monkeypatch, caplog):
    """Windows without Developer Mode refuses symbolic links (so do FAT drives): the photos are copied."""
    import errno
    import os

    _, engine, albums = setup
    results = open_album(engine, albums.save("Home", {"text": "home"}, {"folder": "home"}))

    def refused(source, destination):
        raise OSError(errno.EINVAL, "A required privilege is not held by the client")

    monkeypatch.setattr(os, "symlink", refused)
    copies = export(results, tmp_path / "links")
    assert sorted(p.name for p in copies) == ["c.jpg", "d.jpg"]
    assert all(not p.is_symlink() and p.read_bytes() == open(r.path, "rb").read() for p, r in zip(copies, results))
    assert "cannot make symbolic links there (A required privilege is not held by the client)" in caplog.text


WRITER = """
import sys
from search_app.albums import Albums
albums = Albums(sys.argv[1])
n = 0
while True:
    n += 1
    albums.save(f"album {n % 7}", {"text": f"query {n}"}, {"folder": "trip", "n": n})
    albums.pin(f"album {n % 7}", n, pinned=bool(n % 2))
    print(n, flush=True)
"""


def test_killing_a_save_never_leaves_a_broken_album(setup):
    """A writer saving and pinning as fast as it can is killed (SIGKILL) again and again; each time every
    album reads back whole, and the catalog still opens and searches."""
    from indexer import IndexStore

    root, _, albums = setup
    catalog = root.parent / "index" / "catalog.sqlite"
    last = 0
    for round_ in range(4):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(catalog)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        for line in writer.stdout:  # let it get going, then kill it mid-work
            if int(line) >= 20 + 15 * round_ or time.monotonic() > deadline:
                break
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        fresh = Albums(catalog)
        try:
            for name in fresh.names():
                album = fresh.get(name)
                assert album.query["text"].startswith("query ") and album.options["folder"] == "trip"
                assert set(album.pinned).isdisjoint(album.removed)
            count = max(fresh.get(name).options["n"] for name in fresh.names())
            assert count >= last
            last = count
        finally:
            fresh.close()
    with IndexStore.open(root.parent / "index") as store:
        assert store.count == 4
    assert json.dumps(albums.get(albums.names()[0]).to_json())
