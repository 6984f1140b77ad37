"""Place names typed into a query, in many languages, become the place filter; other words never do."""

from __future__ import annotations

import pytest

from search_app.engine import SearchEngine
from search_app.query_places import PlaceNames

from .test_filters import make

# What indexer/places.py stores for photos taken in these places (city, region, ISO country code).
INDEXED = [
    "Lisbon",
    "PT",
    "Berlin",
    "DE",
    "Málaga",
    "Andalusia",
    "ES",
    "Zürich",
    "CH",
    "Moscow",
    "RU",
    "Tokyo",
    "JP",
    "Saint Petersburg",
    "Bavaria",
]


@pytest.fixture(scope="module")
def names():
    return PlaceNames(INDEXED)


@pytest.mark.parametrize(
    "query, place, rest",
    [
        ("beach Lisbon", "Lisbon", "beach"),  # en, as stored
        ("praia em Lisboa", "Lisbon", "praia"),  # pt, the local name
        ("Strand in Lissabon", "Lisbon", "Strand"),  # de
        ("plage à Lisbonne", "Lisbon", "plage"),  # fr
        ("пляж в Лиссабоне", "Lisbon", "пляж"),  # ru, with a case ending
        ("リスボンの海", "Lisbon", "海"),  # ja, no spaces
        ("里斯本的海滩", "Lisbon", "海滩"),  # zh
        ("Schnee in Bayern", "Bavaria", "Schnee"),  # region, de
        ("мост в Санкт-Петербурге", "Saint Petersburg", "мост"),  # hyphenated, inflected
        ("MALAGA sunset", "Málaga", "sunset"),  # case and accents ignored
        ("zurich lake at night", "Zürich", "lake at night"),
        ("perros en España", "ES", "perros"),  # country names come from CLDR (stored: ES)
        ("Strand in Deutschland", "DE", "Strand"),
        ("ドイツの城", "DE", "城"),
        ("Москва зимой", "Moscow", "зимой"),
    ],
)
def test_typed_place_names_are_found_in_many_languages(names, query, place, rest):
    found = names.find(query)
    assert found is not None and (found.place, found.rest) == (place, rest), found


@pytest.mark.parametrize(
    "query",
    [
        "Berliner Weiße",  # a word that starts with a place name is not the place
        "Lisbonian tram",
        "a nice sunset in Paris",  # Paris is a place, but no indexed photo was taken there
        "it is a dog, de nada",  # ISO codes (IT, DE) are words; only country names count
        "es un perro",
        "2 dogs in the snow",
        "",
    ],
)
def test_words_that_are_not_indexed_place_names_never_fire(names, query):
    assert names.find(query) is None


def test_an_index_without_places_finds_nothing():
    assert PlaceNames([]).find("beach Lisbon") is None and not PlaceNames([]).by_name


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
    assert (
        payload["query_place"] == {"place": "Lisbon", "matched": "в Лиссабоне"} and payload["embedded_text"] == "пляж"
    )
    both = places_engine.search_text("Strand in Deutschland Juli 2023", k=10, dates_in_text=False).to_json()
    assert both["query_place"]["place"] == "DE" and [r["relpath"] for r in both["results"]] == ["berlin.jpg"]


def test_place_chip_removed_or_filter_set_leaves_the_text_alone(places_engine):
    off = places_engine.search_text("beach Lisbon", k=10, places_in_text=False)
    assert off.query_place is None and len(off.results) == 3
    chosen = places_engine.search_text("beach Lisbon", k=10, place="Berlin")  # the typed filter wins
    assert chosen.query_place is None and [r.relpath for r in chosen.results] == ["berlin.jpg"]
    plain = places_engine.search_text("a nice beach", k=10)
    assert plain.query_place is None and len(plain.results) == 3 and "query_place" not in plain.to_json()


def test_results_say_where_they_were_taken_in_captions_details_and_the_api(places_engine):
    """The reverse-geocoded place travels with each result: the caption names the city (a photo app's "14 Jul 2023 ·
    Lisbon"), the API gives the whole place, and a photo without a position says nothing about one."""
    from search_app.ui import caption_of

    by_name = {result.relpath: result for result in places_engine.search_text("a nice beach", k=10).results}
    lisbon, berlin, nowhere = by_name["lisbon.jpg"], by_name["berlin.jpg"], by_name["nowhere.jpg"]
    assert lisbon.country == "PT" and lisbon.city and lisbon.city in lisbon.place
    assert caption_of(lisbon) == f"{lisbon.city} · lisbon.jpg" and caption_of(nowhere) == "nowhere.jpg"
    assert berlin.country == "DE" and caption_of(berlin).startswith(f"{berlin.city or berlin.region} · ")
    payload = {item["relpath"]: item for item in places_engine.search_text("a nice beach", k=10).to_json()["results"]}
    assert payload["lisbon.jpg"]["place"] == lisbon.place and payload["lisbon.jpg"]["place"].endswith(", PT")
    assert payload["nowhere.jpg"]["place"] is None


# -- every script: GeoNames' alternate names of the index's cities and regions (search_app/gazetteer.py) ------------
class CatalogPlaces:
    """What ``IndexStore.place_centres`` answers for photos taken in Berlin (stored: city Mitte, region Berlin),
    Tokyo, Lisbon and Athens (the rows indexer/places.py's GeoNames names produce)."""

    ROWS = [
        ("city", "Mitte", "DE", 52.52, 13.405, 3),
        ("region", "Berlin", "DE", 52.52, 13.405, 3),
        ("city", "Tokyo", "JP", 35.6895, 139.6917, 2),
        ("region", "Tokyo", "JP", 35.6895, 139.6917, 2),
        ("city", "Lisbon", "PT", 38.7167, -9.1333, 1),
        ("region", "Lisbon", "PT", 38.7167, -9.1333, 1),
        ("city", "Athens", "GR", 37.98, 23.72, 1),
        ("region", "Attica", "GR", 37.98, 23.72, 1),
    ]

    def place_centres(self):
        return list(self.ROWS)


@pytest.fixture(scope="module")
def world():
    stored = sorted({name for _, name, *_ in CatalogPlaces.ROWS} | {"DE", "JP", "PT", "GR"})
    return PlaceNames.for_store(CatalogPlaces(), stored)


@pytest.mark.parametrize(
    "query, place, rest",
    [
        ("Берлине", "Berlin", ""),  # Cyrillic, with the case ending the issue names
        ("фото в Берлине", "Berlin", "фото"),
        ("ベルリン", "Berlin", ""),  # Japanese katakana
        ("ベルリンで撮った写真", "Berlin", "撮った写真"),  # with a particle after it
        ("برلين", "Berlin", ""),  # Arabic
        ("صور ببرلين", "Berlin", "صور"),  # "in Berlin": the preposition written onto the name
        ("柏林的夜晚", "Berlin", "夜晚"),  # Chinese Han
        ("Berlín de noche", "Berlin", "de noche"),  # Latin with an accent (es, cs)
        ("Mauer Berlins", "Berlin", "Mauer"),  # German genitive
        ("zdjęcia w Berlinie", "Berlin", "zdjęcia"),  # Polish locative
        ("Berlin'de gece", "Berlin", "gece"),  # Turkish suffix after an apostrophe
        ("νύχτα στο Βερολίνο", "Berlin", "νύχτα"),  # Greek
        ("φώτα του Βερολίνου", "Berlin", "φώτα του"),  # Greek genitive
        ("לילה בברלין", "Berlin", "לילה"),  # Hebrew, "in" written onto the name
        ("बर्लिन में रात", "Berlin", "रात"),  # Devanagari, with the postposition after it
        ("베를린에서 밤", "Berlin", "밤"),  # Korean, particle attached
        ("กลางคืนที่เบอร์ลิน", "Berlin", "กลางคืน"),  # Thai, no spaces
        ("طوكيو ليلا", "Tokyo", "ليلا"),  # Tokyo in Arabic (the example)
        ("東京タワー", "Tokyo", "タワー"),
        ("Токио", "Tokyo", ""),
        ("praia em Lisboa", "Lisbon", "praia"),
        ("리스본 해변", "Lisbon", "해변"),
        ("Αθήνα", "Athens", ""),  # a city stored under its English name
        ("Αθήνας", "Athens", ""),
    ],
)
def test_an_indexed_place_is_found_in_the_script_it_is_typed_in(world, query, place, rest):
    found = world.find(query)
    assert found is not None and (found.place, found.rest) == (place, rest), (query, found)


@pytest.mark.parametrize(
    "query",
    [
        "Berliner Weiße",  # an inflection list, not any continuation
        "bai lin",  # GeoNames' machine romanisation of 柏林: not a name people type
        "BER airport",  # IATA codes are not names
        "TYO",
        "林",  # one Han character is a word, not a place
        "Paris by night",  # a place where no indexed photo was taken, in any script
        "باريس",
        "パリ",
    ],
)
def test_gazetteer_names_do_not_turn_ordinary_words_into_places(world, query):
    assert world.find(query) is None, world.find(query)


def test_gazetteer_matches_cities_and_regions_by_country_and_position():
    from search_app import gazetteer

    rows = [
        ("city", "Zurich", "CH", 47.37, 8.54, 1),  # stored ASCII, GeoNames writes Zürich
        ("city", "Umm al Qaywayn", "AE", 25.56, 55.55, 1),  # renamed since: found by its alternate name
        ("city", "Springfield", "US", 39.80, -89.64, 1),  # many Springfields: the one near the photos
        ("region", "Berlin", "DE", 52.52, 13.405, 1),
        ("region", "Bavaria", "DE", 48.1, 11.6, 1),  # no city of that name: left out
        ("city", "Porto", "PT", 52.52, 13.405, 1),
    ]  # a same-named city far from the photos is not it
    found = gazetteer.cities(rows)
    assert "Zürich" in found[("city", "Zurich", "CH")].names and "Цюрих" in found[("city", "Zurich", "CH")].names
    assert found[("city", "Umm al Qaywayn", "AE")].geonameid == 290594
    assert found[("city", "Springfield", "US")].geonameid == 4250542  # Illinois
    assert {"Берлин", "ベルリン", "برلين", "柏林"} <= set(found[("region", "Berlin", "DE")].names)
    assert ("region", "Bavaria", "DE") not in found and ("city", "Porto", "PT") not in found
    assert not {"BER", "bai lin", "berurin"} & set(found[("region", "Berlin", "DE")].names)
