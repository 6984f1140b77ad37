"""Place names typed into a query, in many languages, become the place filter; other words never do."""
from __future__ import annotations

import pytest

from search_app.engine import SearchEngine
from search_app.query_places import PlaceNames

from .test_filters import make

# What reverse_geocoder stores for photos taken in these places (city, region, ISO country code).
INDEXED = ["Lisbon", "PT", "Berlin", "DE", "Málaga", "Andalusia", "ES", "Zürich", "CH", "Moscow", "RU", "Tokyo", "JP",
           "Saint Petersburg", "Bavaria"]


@pytest.fixture(scope="module")
def names():
    return PlaceNames(INDEXED)


@pytest.mark.parametrize("query, place, rest", [
    ("beach Lisbon", "Lisbon", "beach"),                      # en, as stored
    ("praia em Lisboa", "Lisbon", "praia"),                   # pt, the local name
    ("Strand in Lissabon", "Lisbon", "Strand"),               # de
    ("plage à Lisbonne", "Lisbon", "plage"),                  # fr
    ("пляж в Лиссабоне", "Lisbon", "пляж"),                   # ru, with a case ending
    ("リスボンの海", "Lisbon", "海"),                           # ja, no spaces
    ("里斯本的海滩", "Lisbon", "海滩"),                         # zh
    ("Schnee in Bayern", "Bavaria", "Schnee"),                # region, de
    ("мост в Санкт-Петербурге", "Saint Petersburg", "мост"),  # hyphenated, inflected
    ("MALAGA sunset", "Málaga", "sunset"),                    # case and accents ignored
    ("zurich lake at night", "Zürich", "lake at night"),
    ("perros en España", "ES", "perros"),                     # country names come from CLDR (stored: ES)
    ("Strand in Deutschland", "DE", "Strand"),
    ("ドイツの城", "DE", "城"),
    ("Москва зимой", "Moscow", "зимой"),
])
def test_typed_place_names_are_found_in_many_languages(names, query, place, rest):
    found = names.find(query)
    assert found is not None and (found.place, found.rest) == (place, rest), found


@pytest.mark.parametrize("query", [
    "Berliner Weiße",            # a word that starts with a place name is not the place
    "Lisbonian tram",
    "a nice sunset in Paris",    # Paris is a place, but no indexed photo was taken there
    "it is a dog, de nada",      # ISO codes (IT, DE) are words; only country names count
    "es un perro",
    "2 dogs in the snow",
    "",
])
def test_words_that_are_not_indexed_place_names_never_fire(names, query):
    assert names.find(query) is None


def test_an_index_without_places_finds_nothing():
    assert PlaceNames([]).find("beach Lisbon") is None and PlaceNames([]).pattern is None


@pytest.fixture(scope="module")
def places_engine(tmp_path_factory, tiny_mllama):
    from indexer import IndexStore, build_index

    root = tmp_path_factory.mktemp("places") / "photos"
    make(root / "lisbon.jpg", 1, None, (38.7167, -9.1333))
    make(root / "berlin.jpg", 2, None, (52.52, 13.405))
    make(root / "nowhere.jpg", 3, None)
    build_index([root], root.parent / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(root.parent / "index"), tiny_mllama)
    yield engine
    engine.close()


def test_engine_applies_a_typed_place_as_the_filter_and_embeds_the_rest(places_engine):
    page = places_engine.search_text("пляж в Лиссабоне", k=10)
    assert [r.relpath for r in page.results] == ["lisbon.jpg"]
    payload = page.to_json()
    assert payload["query_place"] == {"place": "Lisbon", "matched": "в Лиссабоне"} and payload["embedded_text"] == "пляж"
    both = places_engine.search_text("Strand in Deutschland Juli 2023", k=10, dates_in_text=False).to_json()
    assert both["query_place"]["place"] == "DE" and [r["relpath"] for r in both["results"]] == ["berlin.jpg"]


def test_place_chip_removed_or_filter_set_leaves_the_text_alone(places_engine):
    off = places_engine.search_text("beach Lisbon", k=10, places_in_text=False)
    assert off.query_place is None and len(off.results) == 3
    chosen = places_engine.search_text("beach Lisbon", k=10, place="Berlin")  # the typed filter wins
    assert chosen.query_place is None and [r.relpath for r in chosen.results] == ["berlin.jpg"]
    plain = places_engine.search_text("a nice beach", k=10)
    assert plain.query_place is None and len(plain.results) == 3 and "query_place" not in plain.to_json()
