"""Map areas as search filters: ``near`` (a circle: latitude, longitude, km) and ``bbox`` (west, south, east, north).

Both are inclusive. ``near`` measures great-circle (haversine) distance on a sphere of the Earth's mean
radius; a ``bbox`` whose west edge is east of its east edge crosses the antimeridian (170,-20,-170,20 is the
strip from 170°E over 180° to 170°W). Photos without GPS never match either. The catalog is asked for the
box around the circle (plain comparisons on the latitude/longitude columns); each photo is then checked
exactly (``within``), as every filter's record test is (search_app/filters.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .limits import MAX_RADIUS_KM

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180


class Near(NamedTuple):
    """A circle on the map: centre and radius (km)."""

    latitude: float
    longitude: float
    km: float

    def __str__(self) -> str:
        return f"{self.latitude:g},{self.longitude:g},{self.km:g}"


class BBox(NamedTuple):
    """A map rectangle in degrees; west > east means it crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    def __str__(self) -> str:
        return f"{self.west:g},{self.south:g},{self.east:g},{self.north:g}"


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _numbers(value, name: str, count: int, form: str, example: str) -> list[float]:
    if isinstance(value, str):
        parts = [part.strip() for part in value.strip().strip("[]()").replace(";", ",").split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = None
    numbers = []
    for part in parts or ():
        if isinstance(part, bool):
            break
        try:
            number = float(part)
        except (TypeError, ValueError):
            break
        if not math.isfinite(number):
            break
        numbers.append(number)
    if parts is None or len(parts) != count or len(numbers) != count:
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "…"
        raise ValueError(f"{name} must be {count} numbers {form} (degrees; e.g. {example}), got {shown!r}")
    return numbers


def _check_latitude(value: float, what: str) -> None:
    if not -90 <= value <= 90:
        raise ValueError(f"{what} must be a latitude from -90 to 90, got {value:g}")


def _check_longitude(value: float, what: str) -> None:
    if not -180 <= value <= 180:
        raise ValueError(f"{what} must be a longitude from -180 to 180, got {value:g}")


def parse_near(value) -> Near | None:
    """ "38.72,-9.14,5" (or a list of three numbers) -> Near; None for no value; ValueError saying what is wrong."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Near):
        return value
    latitude, longitude, km = _numbers(value, "near", 3, "latitude,longitude,km", "38.72,-9.14,5")
    _check_latitude(latitude, "near's latitude (the first number)")
    _check_longitude(longitude, "near's longitude (the second number)")
    if not 0 < km <= MAX_RADIUS_KM:
        raise ValueError(
            f"near's radius (the third number, in km) must be more than 0 and at most {MAX_RADIUS_KM:,.0f}, got {km:g}"
        )
    return Near(latitude, longitude, km)


def parse_bbox(value) -> BBox | None:
    """ "-9.25,38.69,-9.09,38.80" (west,south,east,north; or a list) -> BBox; None for no value; ValueError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, BBox):
        return value
    west, south, east, north = _numbers(value, "bbox", 4, "west,south,east,north", "-9.25,38.69,-9.09,38.80")
    _check_longitude(west, "bbox's west (the first number)")
    _check_latitude(south, "bbox's south (the second number)")
    _check_longitude(east, "bbox's east (the third number)")
    _check_latitude(north, "bbox's north (the fourth number)")
    if south > north:
        raise ValueError(
            f"bbox's south ({south:g}) is north of its north ({north:g}): the order is west,south,east,north"
        )
    return BBox(west, south, east, north)


def in_bbox(latitude: float | None, longitude: float | None, box: BBox) -> bool:
    if latitude is None or longitude is None:
        return False
    if not box.south <= latitude <= box.north:
        return False
    if box.west <= box.east:
        return box.west <= longitude <= box.east
    return longitude >= box.west or longitude <= box.east  # across the antimeridian


def within(latitude: float | None, longitude: float | None, near: Near) -> bool:
    if latitude is None or longitude is None:
        return False
    return distance_km(near.latitude, near.longitude, latitude, longitude) <= near.km


def bbox_around(near: Near) -> BBox:
    """The smallest box holding the circle (whole longitudes when it reaches a pole); may cross the antimeridian."""
    spread = near.km / KM_PER_DEGREE
    south, north = near.latitude - spread, near.latitude + spread
    angle = near.km / EARTH_RADIUS_KM
    if south <= -90 or north >= 90 or angle >= math.pi / 2:
        return BBox(-180.0, max(south, -90.0), 180.0, min(north, 90.0))
    # the circle's widest longitude span (tangent meridians): asin(sin(r/R) / cos(latitude))
    ratio = math.sin(angle) / math.cos(math.radians(near.latitude))
    if ratio >= 1:
        return BBox(-180.0, south, 180.0, north)
    half = math.degrees(math.asin(ratio)) * (1 + 1e-9) + 1e-9  # a hair wider: the exact test decides the edge
    west, east = near.longitude - half, near.longitude + half
    if west < -180:
        west += 360
    if east > 180:
        east -= 360
    return BBox(west, south, east, north)


def bbox_sql(box: BBox, latitude, longitude) -> list:
    """SQL conditions for a box on two columns (inclusive; across the antimeridian when west > east)."""
    from sqlalchemy import or_

    conditions = [latitude.is_not(None), longitude.is_not(None), latitude >= box.south, latitude <= box.north]
    if box.west <= box.east:
        if (box.west, box.east) != (-180, 180):
            conditions += [longitude >= box.west, longitude <= box.east]
    else:
        conditions.append(or_(longitude >= box.west, longitude <= box.east))
    return conditions
