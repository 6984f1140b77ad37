"""Filters defined once (search_app/filters.py): the catalog query and the record test agree, for every filter."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from search_app.engine import SearchEngine, SearchOptions
from search_app.filters import FILTERS

# relpath -> (camera make, model); POSITIONS: relpath -> EXIF GPS (latitude, longitude)
POSITIONS = {
    "Trips/Beach/a.jpg": (52.52, 13.405),
    "Trips/City/c.jpg": (35.6895, 139.6917),
    "home/d.jpg": (-33.8679, 151.2073),
}
PHOTOS = {
    "Trips/Beach/a.jpg": ("Canon", "Canon EOS R6"),
    "Trips/Beach/b.jpg": ("Canon", "Canon EOS R6"),
    "Trips/City/c.jpg": ("Apple", "iPhone 13"),
    "home/d.jpg": ("Apple", "iPhone 13"),
    "home/e.png": None,
    "home/f.jpg": None,
}


def make(path, seed, camera, position=None):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, size=(40 + seed, 56, 3), dtype=np.uint8), "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        image.save(path)
        return
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = camera
    if position:
        gps = exif.get_ifd(0x8825)
        for (ref, value, tag), negative in zip(((1, position[0], 2), (3, position[1], 4)), "SW"):
            gps[ref] = negative if value < 0 else "NE"[tag == 4]
            degrees = abs(value)
            gps[tag] = (int(degrees), int(degrees * 60 % 60), round(degrees * 3600 % 60, 2))
    image.save(path, "JPEG", exif=exif.tobytes())


@pytest.fixture(scope="module")
def cameras_engine(tmp_path_factory, tiny_mllama):
    from indexer import IndexStore, build_index

    root = tmp_path_factory.mktemp("cams") / "photos"
    for seed, (relpath, camera) in enumerate(PHOTOS.items()):
        make(root / relpath, seed, camera, POSITIONS.get(relpath))
    index = root.parent / "index"
    build_index([root], index, tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(index), tiny_mllama)
    yield engine
    engine.close()


def relpaths(page):
    return sorted(result.relpath for result in page.results)


def test_camera_filter_is_whole_name_and_case_insensitive(cameras_engine):
    assert relpaths(cameras_engine.search_text("x", k=50, camera="Canon EOS R6")) == [
        "Trips/Beach/a.jpg",
        "Trips/Beach/b.jpg",
    ]
    assert relpaths(cameras_engine.search_text("x", k=50, camera="apple iphone 13")) == [
        "Trips/City/c.jpg",
        "home/d.jpg",
    ]
    none = cameras_engine.search_text("x", k=50, camera="Canon")
    assert none.results == [] and "No camera called “Canon”" in none.notes[0] and "Canon EOS R6" in none.notes[0]
    assert cameras_engine.suggestions("camera") == ["Apple iPhone 13", "Canon EOS R6"]


def test_file_type_filter(cameras_engine):
    assert relpaths(cameras_engine.search_text("x", k=50, file_type="png")) == ["home/e.png"]
    assert len(cameras_engine.search_text("x", k=50, file_type=".JPG").results) == 5
    assert cameras_engine.suggestions("file_type") == ["jpeg", "png"]
    with pytest.raises(ValueError, match="file_type 'pdf' is not one this app knows"):
        cameras_engine.search_text("x", file_type="pdf")


def test_folder_matches_case_insensitively_and_names_unknown_folders(cameras_engine):
    assert relpaths(cameras_engine.search_text("x", k=50, folder="trips/beach")) == [
        "Trips/Beach/a.jpg",
        "Trips/Beach/b.jpg",
    ]
    missing = cameras_engine.search_text("x", k=50, folder="holidays")
    assert missing.results == [] and missing.notes[0].startswith("No folder called “holidays” is indexed")
    assert "Trips/Beach" in missing.notes[0]
    assert cameras_engine.suggestions("folder") == ["Trips", "Trips/Beach", "Trips/City", "home"]


VALUES = {
    "folder": ["Trips", "home"],
    "date_from": ["2000-01-01"],
    "date_to": ["2100-01-01"],
    "camera": ["Apple iPhone 13", "Canon EOS R6"],
    "file_type": ["jpeg", "png"],
    "place": ["Berlin", "jp"],
    "near": ["52.5,13.4,5", "35.7,139.7,20000"],
    "bbox": ["13,52,14,53", "150,-40,-170,40"],
    "media": ["photo", "video"],
    "has_text": ["yes"],
}


@pytest.mark.parametrize("few_matches", [10_000, 0], ids=["catalog-sql", "record-test"])
@pytest.mark.parametrize("item", FILTERS, ids=lambda item: item.name)
def test_every_filter_answers_the_same_by_sql_and_by_record(cameras_engine, item, few_matches, monkeypatch):
    """Restricted up front (SQL) or tested hit by hit (record predicate): the same photos, for each filter."""
    import search_app.ranking as ranking

    assert item.name in VALUES, f"add test values for the new filter {item.name!r}"
    for value in VALUES[item.name]:
        monkeypatch.setattr(ranking, "FEW_MATCHES", 10_000)
        by_sql = relpaths(cameras_engine.search_text("x", k=50, collapse_duplicates=False, **{item.name: value}))
        monkeypatch.setattr(ranking, "FEW_MATCHES", 0)
        by_record = relpaths(cameras_engine.search_text("x", k=50, collapse_duplicates=False, **{item.name: value}))
        assert by_sql == by_record, (item.name, value)
        opts = SearchOptions.parse(**{item.name: value})
        records = cameras_engine.store.records(cameras_engine.store.ids())
        if item.keep is None:  # catalog-only (has_text): its SQL condition is the definition
            records = cameras_engine.store.records(
                cameras_engine.store.ids_where(item.where(getattr(opts, item.name), cameras_engine.store))
            )
            assert by_record == sorted(r.relpath for r in records)
            continue
        assert by_record == sorted(r.relpath for r in records if item.keep(r, getattr(opts, item.name)))


def test_options_carry_a_field_per_filter():
    fields = SearchOptions.__dataclass_fields__
    assert all(item.name in fields for item in FILTERS)
    with pytest.raises(TypeError, match="unknown search option"):
        SearchOptions.parse(kamera="x")


def test_gps_positions_are_named_offline_and_filter_by_place(cameras_engine):
    records = {r.relpath: r for r in cameras_engine.store.records(cameras_engine.store.ids())}
    berlin = records["Trips/Beach/a.jpg"]
    assert abs(berlin.latitude - 52.52) < 1e-3 and abs(berlin.longitude - 13.405) < 1e-3
    assert (berlin.country, berlin.region) == ("DE", "Berlin")
    assert records["Trips/City/c.jpg"].country == "JP" and records["home/d.jpg"].country == "AU"
    assert records["home/f.jpg"].latitude is None and records["home/f.jpg"].country is None
    assert relpaths(cameras_engine.search_text("x", k=50, place="berlin")) == ["Trips/Beach/a.jpg"]
    assert relpaths(cameras_engine.search_text("x", k=50, place="AU")) == ["home/d.jpg"]
    assert "Berlin" in cameras_engine.suggestions("place") and "JP" in cameras_engine.suggestions("place")


def test_a_catalog_from_before_places_opens_and_gains_the_columns(tmp_path, tiny_mllama):
    """Schema 1 catalogs shipped without the place columns: opening one adds them, keeping every row."""
    import sqlite3

    from indexer import IndexStore, build_index

    root = tmp_path / "photos"
    make(root / "a.jpg", 1, ("Canon", "Canon EOS R6"), (48.8566, 2.3522))
    build_index([root], tmp_path / "index", tiny_mllama, show_progress=False)
    with sqlite3.connect(tmp_path / "index" / "catalog.sqlite") as db:
        for column in ("latitude", "longitude", "country", "region", "city"):
            db.execute(f"ALTER TABLE images DROP COLUMN {column}")
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama)
    try:
        assert [r.relpath for r in engine.search_text("x").results] == ["a.jpg"]
        assert engine.search_text("x", place="FR").results == []  # position unknown until the file is re-read
    finally:
        engine.close()
    make(root / "b.jpg", 2, None, (48.8566, 2.3522))
    build_index([root], tmp_path / "index", tiny_mllama, show_progress=False)  # an old index keeps building
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama)
    try:
        assert relpaths(engine.search_text("x", place="fr")) == ["b.jpg"]
    finally:
        engine.close()
