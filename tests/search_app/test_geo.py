"""Map areas as filters (search_app/geo.py): near (lat, lon, km) and bbox (W, S, E, N) parse strictly, include
their edges, cross the antimeridian, and the catalog's box around a circle never loses a photo inside it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search_app import geo
from search_app.geo import BBox, Near
from search_app.options import SearchOptions


def test_great_circle_distances():
    assert geo.distance_km(38.7223, -9.1393, 41.1579, -8.6291) == pytest.approx(274, abs=2)  # Lisbon-Porto
    assert geo.distance_km(0, 179.5, 0, -179.5) == pytest.approx(111.2, abs=0.1)  # across the antimeridian
    assert geo.distance_km(90, 0, -90, 0) == pytest.approx(math.pi * geo.EARTH_RADIUS_KM)


def test_values_parse_from_text_or_lists():
    assert geo.parse_near(" 38.72, -9.14 ,5 ") == Near(38.72, -9.14, 5.0)
    assert geo.parse_near([38.72, -9.14, 5]) == Near(38.72, -9.14, 5.0)  # as an album stores it
    assert geo.parse_near("[38.72, -9.14, 5.0]") == Near(38.72, -9.14, 5.0)  # and as a text box shows that
    assert geo.parse_bbox("-9.25,38.69,-9.09,38.80") == BBox(-9.25, 38.69, -9.09, 38.8)
    assert geo.parse_bbox("170,-20,-170,20") == BBox(170, -20, -170, 20)  # west > east: across 180°
    assert geo.parse_near("") is None and geo.parse_bbox(None) is None
    assert str(geo.parse_near("38.72,-9.14,5")) == "38.72,-9.14,5"


@pytest.mark.parametrize(
    "value, message",
    [
        ("Lisbon", "near must be 3 numbers latitude,longitude,km"),
        ("38.7,-9.1", "near must be 3 numbers"),
        ("38.7,-9.1,5,1", "near must be 3 numbers"),
        ("nan,0,5", "near must be 3 numbers"),
        ("0,inf,5", "near must be 3 numbers"),
        ("1e999,0,5", "near must be 3 numbers"),
        ([True, 0, 5], "near must be 3 numbers"),
        ({"lat": 1}, "near must be 3 numbers"),
        ("91,0,5", "near's latitude (the first number) must be a latitude from -90 to 90, got 91"),
        ("0,-180.5,5", "near's longitude (the second number) must be a longitude from -180 to 180"),
        ("0,0,0", "near's radius (the third number, in km) must be more than 0 and at most 20,000, got 0"),
        ("0,0,-3", "more than 0"),
        ("0,0,25000", "at most 20,000, got 25000"),
        ("9" * 400, "near must be 3 numbers"),
    ],
)
def test_malformed_near_values_are_refused_with_a_sentence(value, message):
    with pytest.raises(ValueError) as error:
        SearchOptions.parse(near=value)
    assert message in str(error.value)
    assert len(str(error.value)) < 300  # a hostile value is not echoed whole


@pytest.mark.parametrize(
    "value, message",
    [
        ("1,2,3", "bbox must be 4 numbers west,south,east,north"),
        ("a,b,c,d", "bbox must be 4 numbers"),
        ("-9,38,-8", "bbox must be 4 numbers"),
        ("-200,38,-8,39", "bbox's west (the first number) must be a longitude from -180 to 180, got -200"),
        ("-9,-91,-8,39", "bbox's south (the second number) must be a latitude"),
        ("-9,38,181,39", "bbox's east (the third number) must be a longitude"),
        ("-9,38,-8,95", "bbox's north (the fourth number) must be a latitude"),
        ("-9,39,-8,38", "bbox's south (39) is north of its north (38): the order is west,south,east,north"),
    ],
)
def test_malformed_bbox_values_are_refused_with_a_sentence(value, message):
    with pytest.raises(ValueError, match=None) as error:
        SearchOptions.parse(bbox=value)
    assert message in str(error.value)


def test_a_filter_value_over_the_length_bound_is_refused_before_parsing():
    with pytest.raises(ValueError, match="bbox filter is too long"):
        SearchOptions.parse(bbox="1," * 10_000)


def test_bbox_edges_are_inclusive_and_may_cross_the_antimeridian():
    box = BBox(-9.25, 38.69, -9.09, 38.80)
    assert geo.in_bbox(38.69, -9.25, box) and geo.in_bbox(38.80, -9.09, box)
    assert not geo.in_bbox(38.8001, -9.1, box) and not geo.in_bbox(38.7, -9.0899, box)
    assert not geo.in_bbox(None, -9.1, box)
    across = BBox(170, -20, -170, 20)
    assert geo.in_bbox(0, 175, across) and geo.in_bbox(0, -175, across) and geo.in_bbox(0, 180, across)
    assert not geo.in_bbox(0, 0, across) and not geo.in_bbox(0, 169.9, across)


def test_near_is_inclusive_great_circle_distance():
    centre = Near(38.7223, -9.1393, 5)
    assert geo.within(38.7223, -9.1393, centre) and not geo.within(None, None, centre)
    north = 38.7223 + 5 / geo.KM_PER_DEGREE  # exactly 5 km north along the meridian
    assert geo.within(north - 1e-9, -9.1393, centre) and not geo.within(north + 1e-6, -9.1393, centre)


@pytest.mark.parametrize(
    "near",
    [
        Near(38.72, -9.14, 5),
        Near(0, 179.9, 50),
        Near(-16.5, -179.95, 300),
        Near(89.9, 0, 30),
        Near(-89, 10, 500),
        Near(60, 30, 3000),
        Near(10, 20, 19_000),
    ],
)
def test_the_catalog_box_around_a_circle_holds_every_point_of_it(near):
    """The SQL part of the near filter asks for this box: a point inside the circle must never fall outside it."""
    box = geo.bbox_around(near)
    rng = np.random.default_rng(0)
    bearings = rng.uniform(0, 2 * math.pi, 4000)
    distances = near.km * np.sqrt(rng.uniform(0, 1, 4000))
    distances[:64] = near.km * (1 - 1e-9)  # on the edge
    lat1, lon1 = math.radians(near.latitude), math.radians(near.longitude)
    for bearing, distance in zip(bearings, distances):
        angle = distance / geo.EARTH_RADIUS_KM
        lat2 = math.asin(math.sin(lat1) * math.cos(angle) + math.cos(lat1) * math.sin(angle) * math.cos(bearing))
        lon2 = lon1 + math.atan2(
            math.sin(bearing) * math.sin(angle) * math.cos(lat1), math.cos(angle) - math.sin(lat1) * math.sin(lat2)
        )
        lat, lon = math.degrees(lat2), (math.degrees(lon2) + 540) % 360 - 180
        assert geo.within(lat, lon, near) or distance > near.km * (1 - 1e-6)
        assert geo.in_bbox(lat, lon, box), (near, lat, lon, box)
