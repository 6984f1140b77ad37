"""Dates typed into a query, in many languages, become a date filter; names and counts never do."""

from __future__ import annotations

from datetime import date

import pytest

from search_app.query_dates import find_dates

TODAY = date(2026, 11, 29)


@pytest.mark.parametrize(
    "query, start, end, rest",
    [
        ("Strand im Juli 2023", "2023-07-01", "2023-07-31", "Strand"),  # de
        ("пляж летом 2021", "2021-06-01", "2021-08-31", "пляж"),  # ru
        ("кошка в июле 2020 на диване", "2020-07-01", "2020-07-31", "кошка на диване"),  # ru, inflected month
        ("2019年の海", "2019-01-01", "2019-12-31", "海"),  # ja
        ("2023年7月の花火", "2023-07-01", "2023-07-31", "花火"),  # ja, month
        ("去年夏天的海滩", "2025-06-01", "2025-08-31", "海滩"),  # zh, relative
        ("last summer", "2026-06-01", "2026-08-31", ""),  # en: the most recent summer that is over
        ("beach July 2023", "2023-07-01", "2023-07-31", "beach"),  # en
        ("photos from 2019", "2019-01-01", "2019-12-31", "photos"),
        ("plage en août 2022", "2022-08-01", "2022-08-31", "plage"),  # fr
        ("playa en julio de 2023", "2023-07-01", "2023-07-31", "playa"),  # es
        ("el verano pasado en la playa", "2026-06-01", "2026-08-31", "en la playa"),  # es, relative
        ("spiaggia a luglio 2021", "2021-07-01", "2021-07-31", "spiaggia"),  # it
        ("Hund letzten Sommer", "2026-06-01", "2026-08-31", "Hund"),  # de, relative
        ("winter 2021 snow", "2021-12-01", "2022-02-28", "snow"),  # a winter spans the new year
        ("plaża w lipcu 2022", "2022-07-01", "2022-07-31", "plaża"),  # pl
    ],
)
def test_date_expressions_in_many_languages(query, start, end, rest):
    found = find_dates(query, today=TODAY)
    assert found is not None, query
    assert (found.start.date().isoformat(), found.end.date().isoformat(), found.rest) == (start, end, rest)
    assert found.matched and found.matched in query


@pytest.mark.parametrize(
    "query",
    [
        "May at the park",
        "May and her dog",
        "2 dogs",
        "3 cats on 2 sofas",
        "a quiet street",
        "Room 2049",
        "IMG_2019.jpg",
        "in July",
        "Juli am Strand",
        "Май на даче",
        "un perro en la playa",
        "sunset 18:30",
        "",
        "Augusta National golf course",
        "marzo",
        "1.2019",
    ],
)
def test_names_counts_and_lone_months_never_fire(query):
    assert find_dates(query, today=TODAY) is None


def test_last_summer_while_it_is_summer_means_the_year_before():
    found = find_dates("last summer", today=date(2026, 7, 10))
    assert (found.start.date(), found.end.date()) == (date(2025, 6, 1), date(2025, 8, 31))


def test_the_engine_filters_by_a_date_typed_in_the_query(engine):
    """The library has two photos from July 2023 (2023/beach): only they come back, and the date words are not embedded."""
    page = engine.search_text("Strand im Juli 2023", k=50)
    assert sorted(r.relpath for r in page.results) == ["2023/beach/orange.jpg", "2023/beach/red.jpg"]
    assert page.query_dates == {"date_from": "2023-07-01", "date_to": "2023-07-31", "matched": "im Juli 2023"}
    assert page.embedded_text == "Strand"
    assert page.to_json()["query_dates"]["matched"] == "im Juli 2023"
    plain = engine.search_text("Strand", k=50, date_from="2023-07-01", date_to="2023-07-31")
    assert [r.image_id for r in page.results] == [r.image_id for r in plain.results]  # same vector, same filter


def test_the_chip_removed_means_the_text_is_embedded_whole(engine):
    page = engine.search_text("Strand im Juli 2023", k=50, dates_in_text=False)
    assert page.query_dates is None and len(page.results) > 2


def test_an_explicit_date_filter_wins_over_the_text(engine):
    page = engine.search_text("пляж летом 2021", k=50, date_from="2024-03-01", date_to="2024-03-01")
    assert page.query_dates is None
    assert sorted(r.relpath for r in page.results) == ["2024/green.jpg", "2024/yellow.jpg"]
