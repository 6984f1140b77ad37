"""Offline reverse geocoding from the shipped GeoNames table (indexer/places.py, indexer/geonames.py)."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pytest

from indexer import geonames, places


@pytest.mark.parametrize(
    "latitude, longitude, city, region, country",
    [
        (52.52, 13.405, "Mitte", "Berlin", "DE"),  # central Berlin is the district Mitte
        (-33.8688, 151.2093, "Sydney", "New South Wales", "AU"),
        (38.7223, -9.1393, "Lisbon", "Lisbon", "PT"),
        (35.6895, 139.6917, "Tokyo", "Tokyo", "JP"),
        (0.0, -30.0, "Fernando de Noronha (Distrito Estadual)", "Pernambuco", "BR"),  # mid-Atlantic: 500 km to land
        # Just east of the antimeridian, 67 km from Labasa (Fiji, at 179.4° E); reverse_geocoder, measuring in
        # degrees, answered Sigave (Wallis and Futuna, 300 km away): another country.
        (-16.5, -179.99, "Lambasa", "Northern", "FJ"),
        (-16.5, 180.0, "Lambasa", "Northern", "FJ"),
        (65.0, 179.99, "Anadyr", "Chukotskiy Avtonomnyy Okrug", "RU"),  # 121 km; reverse_geocoder: Beringovskiy
        (90.0, 0.0, "Longyearbyen", "Svalbard", "SJ"),
        (90.0, -123.0, "Longyearbyen", "Svalbard", "SJ"),  # at a pole the longitude means nothing
        (-90.0, 0.0, "McMurdo Station", None, "AQ"),  # reverse_geocoder: Grytviken, South Georgia
        (-90.0, 77.0, "McMurdo Station", None, "AQ"),
    ],
)
def test_known_positions_are_named_after_the_nearest_city_on_the_globe(latitude, longitude, city, region, country):
    assert places.place_of(latitude, longitude) == {"country": country, "region": region, "city": city}


@pytest.mark.parametrize(
    "latitude, longitude",
    [
        (None, 13.4),
        (52.5, None),
        (float("nan"), 1.0),
        (91.0, 0.0),
        (0.0, float("inf")),
        ("north", 1.0),
        (1.0, [2.0]),
        pytest.param(10**400, 0.0, id="int-too-big-for-a-float"),
    ],
)
def test_no_or_impossible_position_gives_no_place(latitude, longitude):
    assert places.place_of(latitude, longitude) == {"country": None, "region": None, "city": None}


@pytest.mark.slow  # compares every city for thousands of points (~7 s)
def test_the_grid_answers_exactly_what_comparing_every_city_answers():
    """Random positions all over the globe (most of it sea: the far fallback) and near cities (the grid)."""
    cities = places._load()
    rng = np.random.default_rng(7)
    anywhere = np.c_[np.degrees(np.arcsin(rng.uniform(-1, 1, 400))), rng.uniform(-180, 180, 400)]
    near = rng.integers(0, len(cities.places), 400)
    near_cities = np.c_[
        np.degrees(np.arcsin(cities.unit[near, 2])) + rng.uniform(-0.2, 0.2, 400),
        np.degrees(np.arctan2(cities.unit[near, 1], cities.unit[near, 0])) + rng.uniform(-0.2, 0.2, 400),
    ]
    for latitude, longitude in np.r_[anywhere, np.clip(near_cities, -90, 90)]:
        point = places._unit(np.array([latitude]), np.array([longitude]))[0]
        chords = np.linalg.norm(cities.unit - point, axis=1)
        found = cities.nearest(latitude, longitude)
        assert chords[found] <= chords.min() + 1e-12, (latitude, longitude)


def _write(path, text: str) -> None:
    path.write_bytes(gzip.compress(text.encode("utf-8")))


HEADER = geonames.header("places", geonames.PLACES_COLUMNS)


def test_a_small_table_is_read_and_ties_go_to_the_first_city(tmp_path):
    table = tmp_path / "places.tsv.gz"
    _write(table, f"{HEADER}\n10.0\t20.0\tFirst\tR\tAA\n10.0\t20.0\tTwin\tR\tAA\n-10.0\t-20.0\tSouth\t\tBB\n")
    cities = places.load_cities(table)
    assert cities.places[cities.nearest(10.1, 20.1)] == ("First", "R", "AA")
    assert cities.places[cities.nearest(-50.0, -20.0)] == ("South", "", "BB")


@pytest.mark.parametrize(
    "damage, what",
    [
        (None, "is missing"),
        (b"not gzip at all", "cannot be read"),
        ("truncated", "is damaged (truncated"),
        ("#geonames-names v1\tx\n", "has the wrong header"),
        (f"{HEADER}\n", "is damaged (no rows)"),
        (f"{HEADER}\n1.0\t2.0\tOnly three\n", "is damaged (line 2 has 3 fields, not 5)"),
        (f"{HEADER}\n1.0\tnorth\tName\tR\tAA\n", "is damaged (a position is not a number"),
        (f"{HEADER}\n95.0\t2.0\tName\tR\tAA\n", "is damaged (a position off the globe)"),
        (f"{HEADER}\nnan\t2.0\tName\tR\tAA\n", "is damaged (a position off the globe)"),
    ],
)
def test_a_missing_or_damaged_table_is_an_error_naming_the_file_and_what_to_do(tmp_path, damage, what):
    table = tmp_path / "geonames-places.tsv.gz"
    if isinstance(damage, bytes):
        table.write_bytes(damage)
    elif damage == "truncated":
        table.write_bytes(gzip.compress(f"{HEADER}\n1.0\t2.0\tName\tR\tAA\n".encode() * 50)[:60])
    elif damage is not None:
        _write(table, damage)
    with pytest.raises(geonames.GeoNamesTableError) as error:
        places.load_cities(table)
    message = str(error.value)
    assert str(table) in message and what in message, message
    assert "reinstall" in message and "python -m scripts.make_geonames_table" in message


def test_without_its_table_the_build_goes_on_without_place_names(tmp_path, monkeypatch, caplog):
    """A photo keeps its position; one warning (naming the file and the fix), not one per photo."""
    missing = tmp_path / "geonames-places.tsv.gz"
    monkeypatch.setattr(places, "PLACES_FILE", missing)
    monkeypatch.setattr(places, "_cities", None)
    monkeypatch.setattr(places, "_unavailable", False)
    with caplog.at_level(logging.WARNING, logger="indexer.places"):
        assert places.place_of(52.52, 13.405) == {"country": None, "region": None, "city": None}
        assert places.place_of(38.72, -9.14) == {"country": None, "region": None, "city": None}
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(missing) in warnings[0] and "no place name" in warnings[0], warnings


def test_the_shipped_table_is_in_the_wheel_and_credits_geonames():
    """pyproject.toml ships the tables as package data, beside the CC BY 4.0 attribution."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["indexer"]
    shipped = {path.relative_to(root / "indexer").as_posix() for path in geonames.DATA_DIR.iterdir()}
    assert {"data/geonames-places.tsv.gz", "data/geonames-names.tsv.gz", "data/GEONAMES.md"} <= shipped
    assert all(any(Path(name).match(pattern) for pattern in data) for name in shipped), (data, shipped)
    notice = (geonames.DATA_DIR / "GEONAMES.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in notice and "geonames.org" in notice
