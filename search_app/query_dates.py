"""Dates typed into a query ("Strand im Juli 2023", "пляж летом 2021", "2019年の海", "last summer").

Month names in 20 languages come from dateparser's maintained locale data; the grammar is
deliberately narrow: a month or season only counts next to a year (so "May" the name, or
"in July" alone, never fires), a bare number only as a 4-digit year up to this year (so "2
dogs" never fires), plus "last/this summer|year" in a few languages. Why not
``dateparser.search.search_dates``: measured here it takes 0.2–0.5 s a query (13 s the
first time), misses "last summer" and "летом 2021", reads "2019年の" as year 7 and fires on
"May at the park"; a query must stay within milliseconds.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache

LANGUAGES = (
    "en",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "nl",
    "ru",
    "uk",
    "pl",
    "cs",
    "sv",
    "da",
    "nb",
    "fi",
    "tr",
    "ja",
    "zh",
    "ko",
    "id",
)
MONTH_KEYS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
SEASONS = {  # season -> first month; words in several languages (inflected forms included)
    "spring": (
        3,
        "spring springtime frühling frühjahr printemps primavera lente весна весной весны весну wiosna "
        "wiosną jaro vår forår kevät ilkbahar",
    ),
    "summer": (
        6,
        "summer sommer sommers été verano estate verão zomer лето летом лета літо влітку lato latem léto "
        "kesä kesällä yaz",
    ),
    "autumn": (
        9,
        "autumn fall herbst automne otoño autunno outono herfst осень осенью осени осінь jesień jesienią "
        "podzim höst efterår syksy sonbahar",
    ),
    "winter": (12, "winter winters hiver invierno inverno зима зимой зимы зиму зима взимку zima zimą vinter talvi kış"),
}
CJK_SEASONS = {"春": 3, "夏": 6, "秋": 9, "冬": 12, "봄": 3, "여름": 6, "가을": 9, "겨울": 12}
# Words before a date that belong to it ("im Juli 2023", "from 2019", "в июле 2021").
PREPOSITIONS = (
    "in im in der from during since of von aus während en de del dans au à durante em no na nel nella "
    "di a в во за z w ve v i på från fra uit tijdens yılında"
).split()
LAST = r"(?:last|letzten|letztes|letzte|vergangenen|vergangenes|прошлым|прошлого|прошлой|прошлом|прошлое|минулого|zeszłego|ostatniego|vorige|afgelopen)"
LAST_AFTER = r"(?:dernier|dernière|pasado|pasada|scorso|scorsa|passado|passada)"
THIS = r"(?:this|diesen|dieses|diesem|этим|этого|этом|cet|cette|este|esta|questa|quest'|deze|dit)"
YEAR_WORDS = r"(?:year|jahr|jahres|году|год|année|an|año|anno|ano|jaar|rok|roku|år|vuonna|yıl)"


@dataclass(frozen=True)
class QueryDates:
    """A date range read from a query: [start, end] (whole days), the words it came from, the text left."""

    start: datetime
    end: datetime
    matched: str
    rest: str

    def to_json(self) -> dict:
        return {
            "date_from": self.start.date().isoformat(),
            "date_to": self.end.date().isoformat(),
            "matched": self.matched,
        }


@lru_cache(maxsize=1)
def _month_words() -> dict[str, int]:
    """word (lower case) -> month number, from dateparser's locale data (full names and abbreviations ≥ 3 chars)."""
    import importlib

    words: dict[str, int] = {}
    for language in LANGUAGES:
        try:
            info = importlib.import_module(f"dateparser.data.date_translation_data.{language}").info
        except ImportError:  # dateparser missing or a language renamed: fewer languages, never a crash
            continue
        for month, key in enumerate(MONTH_KEYS, start=1):
            for word in info.get(key, []):
                word = word.lower().rstrip(".")
                if len(word) >= 3 and not word.isdigit():
                    words.setdefault(word, month)
    return words


@lru_cache(maxsize=1)
def _patterns():
    months = sorted(_month_words(), key=len, reverse=True)
    month = "(?P<month>" + "|".join(re.escape(word) for word in months if not _cjk(word)) + r")\w{0,3}"
    season_words = {word: name for name, (_, words) in SEASONS.items() for word in words.split()}
    season = "(?P<season>" + "|".join(sorted(map(re.escape, season_words), key=len, reverse=True)) + ")"
    prep = r"(?:(?:" + "|".join(map(re.escape, sorted(PREPOSITIONS, key=len, reverse=True))) + r")\s+)?"
    year = r"(?P<year>(?:19|20)\d{2})"
    link = r"(?:\s+(?:de|of|del|di|года|roku|року))?"
    flags = re.IGNORECASE
    cjk_season = "(?P<cseason>" + "|".join(CJK_SEASONS) + ")"
    return season_words, [
        (
            "cjk",
            re.compile(year + r"\s*年(?:\s*(?P<cmonth>\d{1,2})\s*月)?(?:\s*" + cjk_season + r"[天季]?)?(?:の|的)?"),
        ),
        ("cjk_last", re.compile(r"(?P<lastyear>去年|昨年|작년)(?:\s*(?:の)?\s*" + cjk_season + r"[天季]?)?(?:の|的)?")),
        ("month_year", re.compile(r"(?<!\w)" + prep + month + link + r"\s+" + year + r"(?!\d)", flags)),
        ("season_year", re.compile(r"(?<!\w)" + prep + season + link + r"\s+" + year + r"(?!\d)", flags)),
        (
            "last_season",
            re.compile(
                r"(?<!\w)(?:(?:in\s+)?(?:the\s+)?)" + r"(?P<rel>" + LAST + "|" + THIS + r")\s+" + season + r"(?!\w)",
                flags,
            ),
        ),
        (
            "season_last",
            re.compile(
                r"(?<!\w)(?:(?:l'|le\s+|el\s+|la\s+|l’)?)" + season + r"\s+(?P<rel>" + LAST_AFTER + r")(?!\w)", flags
            ),
        ),
        (
            "last_year",
            re.compile(
                r"(?<!\w)(?:(?:в|in|im)\s+)?(?P<rel>" + LAST + "|" + THIS + r")\s+" + YEAR_WORDS + r"(?!\w)", flags
            ),
        ),
        (
            "year_last",
            re.compile(
                r"(?<!\w)(?:(?:l'|l’|el\s+|l')?)" + YEAR_WORDS + r"\s+(?P<rel>" + LAST_AFTER + r")(?!\w)", flags
            ),
        ),
        ("year", re.compile(r"(?<![\w.:/-])" + prep + year + r"(?![\w.:/-])", flags)),
    ]


def _cjk(word: str) -> bool:
    return any(ord(char) > 0x2E80 for char in word)


def find_dates(text: str, today: date | None = None) -> QueryDates | None:
    """The first date expression in ``text`` as a range, or None (never raises on odd text)."""
    if not text or not text.strip():
        return None
    today = today or date.today()
    season_words, patterns = _patterns()
    for kind, pattern in patterns:
        for match in pattern.finditer(text):
            span = _span(kind, match, season_words, today)
            if span is None:
                continue
            start, end = span
            if start.year > today.year:
                continue
            rest = " ".join((text[: match.start()] + " " + text[match.end() :]).split())
            rest = re.sub(r"\s+([,.;:!?])", r"\1", rest).strip(" ,;:-")
            return QueryDates(
                datetime.combine(start, time.min), datetime.combine(end, time.max), match.group(0).strip(), rest
            )
    return None


def _span(kind: str, match: re.Match, season_words: dict[str, str], today: date) -> tuple[date, date] | None:
    groups = match.groupdict()
    year = int(groups["year"]) if groups.get("year") else None
    if kind == "cjk":
        if groups.get("cmonth"):
            month = int(groups["cmonth"])
            return _month_span(year, month) if 1 <= month <= 12 else None
        if groups.get("cseason"):
            return _season_span(year, CJK_SEASONS[groups["cseason"]])
        return date(year, 1, 1), date(year, 12, 31)
    if kind == "cjk_last":
        last = today.year - 1
        if groups.get("cseason"):
            return _season_span(last, CJK_SEASONS[groups["cseason"]])
        return date(last, 1, 1), date(last, 12, 31)
    if kind == "month_year":
        month = _month_of(groups["month"], match.group(0))
        return None if month is None else _month_span(year, month)
    if kind == "season_year":
        return _season_span(year, SEASONS[season_words[groups["season"].lower()]][0])
    if kind in ("last_season", "season_last"):
        first = SEASONS[season_words[groups["season"].lower()]][0]
        is_last = not re.fullmatch(THIS, groups["rel"], re.IGNORECASE)
        if not is_last:  # "this summer": the one of this calendar year
            return _season_span(today.year, first)
        year = today.year  # "last summer": the most recent one that is over
        while _season_span(year, first)[1] >= today:
            year -= 1
        return _season_span(year, first)
    if kind in ("last_year", "year_last"):
        is_last = not re.fullmatch(THIS, groups["rel"], re.IGNORECASE)
        year = today.year - 1 if is_last else today.year
        return date(year, 1, 1), date(year, 12, 31)
    if kind == "year":
        return date(year, 1, 1), date(year, 12, 31)
    return None


def _month_of(word: str, whole: str) -> int | None:
    """The month a matched (possibly inflected) word names: "июле" -> 7 via "июл"; the longest known prefix wins."""
    word = word.lower()
    words = _month_words()
    for cut in range(len(word), 2, -1):
        if word[:cut] in words:
            return words[word[:cut]]
    return None


def _month_span(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _season_span(year: int, first_month: int) -> tuple[date, date]:
    """Three months from ``first_month``; winter Y is December Y to February Y+1."""
    end_month, end_year = first_month + 2, year
    if end_month > 12:
        end_month, end_year = end_month - 12, year + 1
    return date(year, first_month, 1), date(end_year, end_month, calendar.monthrange(end_year, end_month)[1])
