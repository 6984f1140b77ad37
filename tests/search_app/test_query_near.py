"""A radius typed into a query ("within 5 km of Lisbon", "near Lisbon", "в 5 км от Берлина", "قرب برلين") becomes
the near filter, shown as a chip; the near and bbox options filter; results carry their GPS position."""

from __future__ import annotations

import math

import pytest

from search_app.engine import SearchEngine
from search_app.geo import KM_PER_DEGREE, distance_km
from search_app.query_near import find_near
from search_app.query_places import PlaceNames

from .conftest import running_app
from .test_filters import make
from .test_query_places import CatalogPlaces

LISBON = (38.72509, -9.1498)  # GeoNames' Lisbon (the centre a typed "Lisbon" stands for)
BERLIN = (52.52437, 13.41053)


@pytest.fixture(scope="module")
def world():
    stored = sorted({name for _, name, *_ in CatalogPlaces.ROWS} | {"DE", "JP", "PT", "GR"})
    return PlaceNames.for_store(CatalogPlaces(), stored)


@pytest.mark.parametrize(
    "query, place, km, matched, rest",
    [
        ("beach within 5 km of Lisbon", "Lisbon", 5, "within 5 km of Lisbon", "beach"),
        ("near Lisbon", "Lisbon", 25, "near Lisbon", ""),
        ("trams close to Lisbon at night", "Lisbon", 25, "close to Lisbon", "trams at night"),
        ("within 2.5 km of Lisbon", "Lisbon", 2.5, "within 2.5 km of Lisbon", ""),
        ("within 500 m of Lisbon", "Lisbon", 0.5, "within 500 m of Lisbon", ""),
        ("within 3 miles of Tokyo", "Tokyo", 3 * 1.609344, "within 3 miles of Tokyo", ""),
        ("praia perto de Lisboa", "Lisbon", 25, "perto de Lisboa", "praia"),
        ("cerca de Lisboa", "Lisbon", 25, "cerca de Lisboa", ""),
        ("a menos de 10 km de Lisboa", "Lisbon", 10, "a menos de 10 km de Lisboa", ""),
        ("Strand in der Nähe von Berlin", "Berlin", 25, "in der Nähe von Berlin", "Strand"),
        ("im Umkreis von 5 km um Berlin", "Berlin", 5, "im Umkreis von 5 km um Berlin", ""),
        ("près de Berlin", "Berlin", 25, "près de Berlin", ""),
        ("парк в 5 км от Берлина", "Berlin", 5, "в 5 км от Берлина", "парк"),
        ("рядом с Берлином", "Berlin", 25, "рядом с Берлином", ""),
        ("w promieniu 3 km od Berlina", "Berlin", 3, "w promieniu 3 km od Berlina", ""),
        ("قرب برلين", "Berlin", 25, "قرب برلين", ""),
        ("على بعد 5 كم من برلين", "Berlin", 5, "على بعد 5 كم من برلين", ""),
        ("ליד ברלין", "Berlin", 25, "ליד ברלין", ""),
        ("κοντά στο Βερολίνο", "Berlin", 25, "κοντά στο Βερολίνο", ""),
        ("बर्लिन के पास", "Berlin", 25, "बर्लिन के पास", ""),
        ("ベルリンの近くの公園", "Berlin", 25, "ベルリンの近く", "の公園"),
        ("東京から5km以内", "Tokyo", 5, "東京から5km以内", ""),
        ("距柏林5公里以内的公园", "Berlin", 5, "距柏林5公里以内", "的公园"),
        ("柏林附近", "Berlin", 25, "柏林附近", ""),
        ("베를린 근처", "Berlin", 25, "베를린 근처", ""),
        ("ใกล้เบอร์ลิน", "Berlin", 25, "ใกล้เบอร์ลิน", ""),
        ("Berlin yakınında", "Berlin", 25, "Berlin yakınında", ""),
    ],
)
def test_a_typed_radius_becomes_a_circle_around_the_place(world, query, place, km, matched, rest):
    found = find_near(query, world)
    assert found is not None, query
    assert (found.place, found.matched, found.rest) == (place, matched, rest)
    assert found.near.km == pytest.approx(km)
    assert (
        distance_km(
            *found.near[:2], *(LISBON if place == "Lisbon" else BERLIN if place == "Berlin" else (35.6895, 139.69171))
        )
        < 1
    )
    assert found.label == f"within {found.near.km:g} km of {place}" and found.filters == {"near": found.near}


@pytest.mark.parametrize(
    "query",
    [
        "beach Lisbon",  # a place, not a radius: the place filter (query_places)
        "in Berlin",
        "linear park Lisbon",  # "near" inside a word
        "near Paris",  # no photo was taken in Paris
        "near Attica",  # a region without a city of its name: no centre (it stays the place filter)
        "within 30000 km of Lisbon",  # more than the Earth: not a radius
        "",
    ],
)
def test_no_radius_without_near_words_and_a_known_centre(world, query):
    assert find_near(query, world) is None


# -- the engine: typed radius, near and bbox options, positions in results -----------------------------------------
def east_of(point, km):
    return point[0], point[1] + km / (KM_PER_DEGREE * math.cos(math.radians(point[0])))


def north_of(point, km):
    return point[0] + km / KM_PER_DEGREE, point[1]


# corner.jpg: 4 km north and 4 km east of Lisbon, 5.7 km away: inside the catalog's box around a 5 km circle, outside it
PHOTOS = {
    "lisbon.jpg": (38.7167, -9.1333),
    "belem-side.jpg": east_of(LISBON, -3),
    "corner.jpg": north_of(east_of(LISBON, 4), 4),
    "sintra.jpg": (38.80097, -9.37826),
    "porto.jpg": (41.15, -8.61),
    "tokyo.jpg": (35.6895, 139.6917),
    "fiji.jpg": (-17.8, 179.9),
    "nogps.jpg": None,
}


def build_library(root):
    for seed, (name, position) in enumerate(PHOTOS.items()):
        make(root / name, seed, None, position)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_mllama):
    from indexer import IndexStore, build_index

    root = tmp_path_factory.mktemp("near") / "photos"
    build_library(root)
    build_index([root], root.parent / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(root.parent / "index"), tiny_mllama)
    yield engine
    engine.close()


def names(page):
    return sorted(result.relpath for result in page.results)


def test_within_5_km_of_lisbon_typed_in_the_query_filters_by_distance(engine):
    page = engine.search_text("beach within 5 km of Lisbon", k=50)
    assert names(page) == ["belem-side.jpg", "lisbon.jpg"]
    payload = page.to_json()
    assert payload["query_place"]["label"] == "within 5 km of Lisbon"
    assert payload["query_place"]["matched"] == "within 5 km of Lisbon" and payload["embedded_text"] == "beach"
    assert payload["query_place"]["near"]["km"] == 5
    assert names(engine.search_text("near Lisbon", k=50)) == [
        "belem-side.jpg",
        "corner.jpg",
        "lisbon.jpg",
        "sintra.jpg",
    ]
    assert names(engine.search_text("пляж в 5 км от Лиссабона", k=50)) == ["belem-side.jpg", "lisbon.jpg"]
    assert names(engine.search_text("perto de Lisboa", k=50)) == [
        "belem-side.jpg",
        "corner.jpg",
        "lisbon.jpg",
        "sintra.jpg",
    ]


def test_the_place_chip_in_other_scripts_and_the_radius_chip_removed(engine):
    tokyo = engine.search_text("東京の夜", k=50)
    assert names(tokyo) == ["tokyo.jpg"] and tokyo.query_place == {"place": "Tokyo", "matched": "東京の"}
    assert names(engine.search_text("طوكيو", k=50)) == ["tokyo.jpg"]
    off = engine.search_text("near Lisbon", k=50, places_in_text=False)
    assert off.query_place is None and len(off.results) == len(PHOTOS)


@pytest.mark.parametrize("few_matches", [10_000, 0], ids=["catalog-box-then-exact", "exact-hit-by-hit"])
def test_near_is_exact_whichever_way_the_search_is_restricted(engine, few_matches, monkeypatch):
    import search_app.ranking as ranking

    monkeypatch.setattr(ranking, "FEW_MATCHES", few_matches)
    assert names(engine.search_text("x", k=50, near=f"{LISBON[0]},{LISBON[1]},5")) == ["belem-side.jpg", "lisbon.jpg"]
    assert names(engine.search_text("x", k=50, near=f"{LISBON[0]},{LISBON[1]},5.7")) == [
        "belem-side.jpg",
        "corner.jpg",
        "lisbon.jpg",
    ]


def test_near_and_bbox_options_filter_and_results_carry_positions(engine):
    near = engine.search_text("x", k=50, near=f"{LISBON[0]},{LISBON[1]},5")
    assert names(near) == ["belem-side.jpg", "lisbon.jpg"]
    assert names(engine.search_text("x", k=50, bbox="-9.5,38.6,-9.0,38.9")) == [
        "belem-side.jpg",
        "corner.jpg",
        "lisbon.jpg",
        "sintra.jpg",
    ]
    assert names(engine.search_text("x", k=50, bbox="179,-20,-179,-15")) == ["fiji.jpg"]  # across 180°
    assert names(engine.search_text("x", k=50, bbox="-9.5,38.6,-9.0,38.9", near="41.15,-8.61,1")) == []
    every = {result.relpath: result for result in engine.search_text("x", k=50).results}
    assert every["tokyo.jpg"].to_json()["latitude"] == pytest.approx(35.6895, abs=1e-3)
    assert every["tokyo.jpg"].to_json()["longitude"] == pytest.approx(139.6917, abs=1e-3)
    assert every["nogps.jpg"].to_json()["latitude"] is None and every["nogps.jpg"].longitude is None
    with pytest.raises(ValueError, match="bbox's south .* is north of its north"):
        engine.search_text("x", bbox="-9.5,38.9,-9.0,38.6")


# -- the HTTP API on the served app -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_mllama_dir):
    work = tmp_path_factory.mktemp("near-app")
    library = tmp_path_factory.mktemp("near-library")
    build_library(library)
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(library),
        "--concurrency",
        "1",
    ]
    with running_app(work, args) as url:
        yield url


@pytest.mark.server
def test_the_api_takes_bbox_and_near_and_says_what_is_wrong_with_them(served):
    from gradio_client import Client

    client = Client(served, verbose=False)
    boxed = client.predict(text="x", k=50, bbox="-9.5,38.6,-9.0,38.9", api_name="/search_text")
    assert sorted(r["relpath"] for r in boxed["results"]) == [
        "belem-side.jpg",
        "corner.jpg",
        "lisbon.jpg",
        "sintra.jpg",
    ]
    assert all(isinstance(r["latitude"], float) and isinstance(r["longitude"], float) for r in boxed["results"])
    near = client.predict(text="x", k=50, near=f"{LISBON[0]},{LISBON[1]},5", api_name="/search_text")
    assert sorted(r["relpath"] for r in near["results"]) == ["belem-side.jpg", "lisbon.jpg"]
    typed = client.predict(text="within 5 km of Lisbon", k=50, api_name="/search_text")
    assert typed["query_place"]["label"] == "within 5 km of Lisbon" and len(typed["results"]) == 2
    with pytest.raises(Exception, match="bbox must be 4 numbers west,south,east,north"):
        client.predict(text="x", bbox="Lisbon", api_name="/search_text")
    with pytest.raises(Exception, match="near's radius"):
        client.predict(text="x", near="38.7,-9.1,0", api_name="/search_text")


def test_an_album_keeps_a_map_area_and_a_typed_radius(engine):
    from search_app.album_views import open_album, saved_options

    page = engine.search_text("x", k=50, bbox="-9.5,38.6,-9.0,38.9")
    engine.albums.save("Lisbon area", {"text": "x"}, saved_options(page.options))
    typed = engine.search_text("within 5 km of Lisbon", k=50)
    engine.albums.save("Lisbon centre", {"text": "x"}, saved_options(typed.options))
    area = open_album(engine, engine.albums.get("Lisbon area"))
    assert sorted(result.relpath for result in area) == ["belem-side.jpg", "corner.jpg", "lisbon.jpg", "sintra.jpg"]
    centre = open_album(engine, engine.albums.get("Lisbon centre"))
    assert sorted(result.relpath for result in centre) == ["belem-side.jpg", "lisbon.jpg"]


def test_the_ui_shows_the_radius_as_a_chip_and_its_removal_searches_without_it(engine, tmp_path_factory):
    from search_app.thumbnails import ThumbnailCache
    from search_app.ui import SearchUI
    from search_app.ui_reply import OUTPUTS

    class NoProgress:
        def __call__(self, *args, **kwargs):
            pass

        def tqdm(self, iterable, **kwargs):
            return iterable

    ui = SearchUI(engine, ThumbnailCache(tmp_path_factory.mktemp("thumbs")), page_size=20)
    outputs = ui.on_search("within 5 km of Lisbon", None, progress=NoProgress())
    chip = outputs[OUTPUTS.index("place_chip")]
    assert chip["visible"] and chip["value"] == "📍 within 5 km of Lisbon (from “within 5 km of Lisbon”) ✕"
    shown = outputs[OUTPUTS.index("session")].results
    assert sorted(result.relpath for result in shown) == ["belem-side.jpg", "lisbon.jpg"]
    removed = ui.on_place_chip_removed("within 5 km of Lisbon", None, progress=NoProgress())
    assert len(removed[OUTPUTS.index("session")].results) == len(PHOTOS)
    assert not removed[OUTPUTS.index("place_chip")]["visible"]
