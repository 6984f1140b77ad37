"""Offline reverse geocoding: a GPS position -> country code, region, city (GeoNames data, no network).

Uses the ``reverse_geocoder`` package, which ships GeoNames' cities (population ≥ 1000) and
answers from a k-d tree: the nearest such place names the photo's city. Loaded on the first
photo with a position (a few seconds), never for libraries without GPS.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_lock = threading.Lock()
_geocoder = None
_unavailable = False


def place_of(latitude: float | None, longitude: float | None) -> dict:
    """{"country", "region", "city"} for a position (all None without one, or without the GeoNames data)."""
    empty = {"country": None, "region": None, "city": None}
    if latitude is None or longitude is None:
        return empty
    geocoder = _load()
    if geocoder is None:
        return empty
    with _lock:
        found = geocoder.query([(float(latitude), float(longitude))])[0]
    return {"country": found.get("cc") or None, "region": found.get("admin1") or None,
            "city": found.get("name") or None}


def _load():
    global _geocoder, _unavailable
    with _lock:
        if _geocoder is None and not _unavailable:
            try:
                import reverse_geocoder

                _geocoder = reverse_geocoder.RGeocoder(mode=1, verbose=False)  # mode 1: no worker processes
            except Exception as error:  # noqa: BLE001 - places are a bonus: the build goes on without them
                _unavailable = True
                log.warning("reverse geocoding unavailable (%s): photos keep their GPS position but no place name",
                            error)
        return _geocoder
