"""Place names typed into a query ("beach Lisbon", "praia em Lisboa", "пляж в Лиссабоне", "リスボンの海", "شاطئ برلين").

Only names of places where indexed photos were taken count (the catalog's country, region and city,
named offline from GeoNames at index time; see indexer/places.py), so a word fires only if it names
one of them. Matching ignores case and accents and takes whole words, with the cheap inflections of
each script (the ``*_ENDING`` patterns below): Cyrillic case endings ("Лиссабоне"), Latin ones ("Berlins", "w Berlinie",
"z Berlína", "Berlin'de"), Greek ("Βερολίνου"), Arabic and Hebrew prefixes written onto the name
("ببرلين", "בברלין"). Names in scripts written without spaces (Chinese, Japanese, Korean, Thai) match
inside the text, with a particle after them ("ベルリンで", "베를린에서") taken along.
Other-language names come from GeoNames' alternate names for cities (search_app/gazetteer.py: Берлин,
ベルリン, برلين, 柏林, Berlín …), from CLDR via ``babel`` for countries (the catalog stores ISO codes,
which themselves are never matched: "it", "de", "no" are words) and from ``ALIASES`` below for a
few regions and cities. A matched name is removed from the embedded text and becomes the place
filter, shown as a removable chip; "near Lisbon" / "within 5 km of Lisbon" become a radius instead
(search_app/query_near.py).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Iterator, Mapping

from indexer.scripts import has_unspaced

from .geo import Near
from .query_dates import LANGUAGES

# Country names come from CLDR in these languages (the query-date ones and more scripts).
PLACE_LANGUAGES = (*LANGUAGES, "ar", "he", "hi", "el", "th", "fa", "bn", "vi", "hu", "ro", "bg", "sr")

# Each line: names of one place in several languages. If any of them is an indexed place name, all match it.
ALIASES = """
Lisbon|Lisboa|Lissabon|Lisbonne|Lisbona|Lizbona|Лиссабон|Лісабон|リスボン|里斯本|리스본
Porto|Oporto|Порту|ポルト|波尔图
Munich|München|Muenchen|Munique|Monaco di Baviera|Мюнхен|ミュンヘン|慕尼黑|뮌헨
Cologne|Köln|Koeln|Colonia|Colônia|Кёльн|Кельн|ケルン|科隆
Vienna|Wien|Vienne|Viena|Wiedeń|Вена|Відень|ウィーン|维也纳|빈
Prague|Praha|Prag|Praga|Прага|プラハ|布拉格|프라하
Warsaw|Warszawa|Warschau|Varsovie|Varsovia|Varsavia|Варшава|ワルシャワ|华沙|바르샤바
Rome|Roma|Rom|Рим|ローマ|罗马|로마
Milan|Milano|Mailand|Milán|Милан|ミラノ|米兰|밀라노
Florence|Firenze|Florenz|Florencia|Florença|Флоренция|フィレンツェ|佛罗伦萨|피렌체
Venice|Venezia|Venedig|Venise|Venecia|Veneza|Венеция|ヴェネツィア|威尼斯|베네치아
Naples|Napoli|Neapel|Nápoles|Неаполь|ナポリ|那不勒斯|나폴리
Paris|Париж|パリ|巴黎|파리
London|Londres|Londra|Londyn|Лондон|ロンドン|伦敦|런던
Athens|Athína|Athen|Athènes|Atenas|Atene|Ateny|Афины|アテネ|雅典|아테네
Moscow|Moskva|Moskau|Moscou|Moscú|Mosca|Moskwa|Москва|モスクワ|莫斯科|모스크바
Saint Petersburg|Sankt Petersburg|Saint-Pétersbourg|San Petersburgo|Санкт-Петербург|Петербург|サンクトペテルブルク|圣彼得堡
Kyiv|Kiev|Kijów|Київ|Киев|キーウ|基辅|키이우
Beijing|Peking|Pékin|Pekín|Pechino|Пекин|北京|베이징
Tokyo|Tokio|Tōkyō|Токио|東京|东京|도쿄
Kyoto|Kioto|Киото|京都|교토
Seoul|Séoul|Seúl|Сеул|ソウル|首尔|서울
New York City|New York|Nueva York|Nova Iorque|Нью-Йорк|ニューヨーク|纽约|뉴욕
Brussels|Bruxelles|Brüssel|Bruselas|Bruxelas|Bruksela|Brussel|Брюссель|ブリュッセル|布鲁塞尔
Copenhagen|København|Kopenhagen|Copenhague|Copenaghen|Kopenhaga|Копенгаген|コペンハーゲン|哥本哈根
Bavaria|Bayern|Bavière|Baviera|Bawaria|Бавария|バイエルン|巴伐利亚
Catalonia|Catalunya|Katalonien|Catalogne|Cataluña|Catalogna|Каталония|カタルーニャ|加泰罗尼亚
Tuscany|Toscana|Toskana|Toscane|Тоскана|トスカーナ|托斯卡纳
"""
# Words before a place that belong to it ("in Lisbon", "em Lisboa", "в Москве"); removed with it.
PREPOSITIONS = (
    "in im in der nach bei near at around à a au aux en em no na nel nella a di de da do dans près de "
    "cerca de в во под около w we na pod koło v ve u i på ved nära bij في στο στη στην στον σε"
).split()
MIN_LETTERS = 3  # shorter names in spaced scripts (and ISO codes) are too often ordinary words
MIN_UNSPACED = 2  # a name found inside unspaced text needs two characters (one Han character is a word)
# Inflections a name may carry in the query (after the whole name; see ``PlaceNames._pattern``).
CYRILLIC_ENDING = r"[а-яёіїє]{0,2}"  # Russian/Ukrainian case endings: Лиссабон -> Лиссабоне, Москва -> Москве
LATIN_ENDING = r"(?:s|a|u|e|y|ie|em|ou|owi|iem|['’][^\W\d_]{1,4})?"  # Berlins, w Berlinie, z Berlína, Berlin'de
MIN_LATIN_STEM = 5  # a Latin ending only after names of ≥ 5 letters ("Baths" is not Bath)
GREEK_ENDING = r"(?:σ|υ|ν|ου)?"  # folded: Αθήνας, Βερολίνου
ATTACHED = r"و?[بلكف]|و|ו?[בלמכש]|ו"  # Arabic ب/ل/ك/ف/و, Hebrew ב/ל/מ/כ/ש/ו written onto a name
PARTICLES = "(?:から|まで|の|に|で|へ|的|에서의|에서|에게|에|의|은|는|을|를|로|으로)"  # after unspaced names
UNSPACED_BEFORE = "(?:ที่|ใน|在)"  # Thai "at"/"in", Chinese "in" written before a name
POSTPOSITIONS = ("में", "मे")  # Hindi "in", a word after the name


@dataclass(frozen=True)
class QueryPlace:
    """A place read from a query: the indexed value applied as the place filter, the words, the text left.

    With ``near`` ("within 5 km of Lisbon", "near Lisbon") the filter is that circle instead of the place."""

    place: str
    matched: str
    rest: str
    near: Near | None = None

    @property
    def label(self) -> str:
        """What the chip says: "Lisbon", or "within 5 km of Lisbon"."""
        return self.place if self.near is None else f"within {self.near.km:g} km of {self.place}"

    @property
    def filters(self) -> dict:
        """The search options this place sets (``near`` or ``place``)."""
        return {"place": self.place} if self.near is None else {"near": self.near}

    def to_json(self) -> dict:
        payload = {"place": self.place, "matched": self.matched}
        if self.near is not None:
            payload.update(
                label=self.label,
                near={"latitude": self.near.latitude, "longitude": self.near.longitude, "km": self.near.km},
            )
        return payload


@dataclass(frozen=True)
class NameMatch:
    """Where an indexed place's name is in a text: ``start``/``end`` with the words around it taken along
    (preposition, attached prefix, particle), ``name_start``/``name_end`` the name itself (with its ending)."""

    place: str
    start: int
    end: int
    name_start: int
    name_end: int


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a name: "Málaga" -> "malaga", "Zürich" -> "zurich"."""
    return "".join(_fold_char(char) for char in text)


def _fold_char(char: str) -> str:
    if char in "йЙёЁїЇ":  # letters of their own in Cyrillic, not accented ones (keeps Москве ≠ Москвe)
        return char.lower()
    if _kept_whole(char):  # kana voicing marks and Hangul syllables are part of the letter, not accents
        return char
    return "".join(part for part in unicodedata.normalize("NFKD", char) if not unicodedata.combining(part)).casefold()


def _kept_whole(char: str) -> bool:
    code = ord(char)
    return 0x3040 <= code <= 0x30FF or 0xAC00 <= code <= 0xD7A3


def _cyrillic(text: str) -> bool:
    return any("\u0400" <= char <= "\u04ff" for char in text)


def _greek(text: str) -> bool:
    return any("\u0370" <= char <= "\u03ff" for char in text)


def _ending(name: str) -> str:
    """The inflection pattern a (folded) name may carry, by its script."""
    if _cyrillic(name):
        return CYRILLIC_ENDING
    if _greek(name):
        return GREEK_ENDING
    if name.isascii() and sum(char.isalpha() for char in name) >= MIN_LATIN_STEM:
        return LATIN_ENDING
    return ""


@lru_cache(maxsize=1)
def _alias_groups() -> dict[str, tuple[str, ...]]:
    """folded name -> every name of that place (from ``ALIASES``)."""
    groups: dict[str, tuple[str, ...]] = {}
    for line in ALIASES.strip().splitlines():
        names = tuple(name.strip() for name in line.split("|") if name.strip())
        for name in names:
            groups[fold(name)] = names
    return groups


@lru_cache(maxsize=256)
def country_names(code: str) -> tuple[str, ...]:
    """The country's names in ``PLACE_LANGUAGES`` (CLDR via babel; none if babel is missing)."""
    try:
        from babel import Locale
    except ImportError:
        return ()
    names = []
    for language in PLACE_LANGUAGES:
        try:
            name = Locale.parse(language).territories.get(code.upper())
        except (ValueError, LookupError):  # a locale babel does not ship
            continue
        if name:
            names.append(name)
    return tuple(dict.fromkeys(names))


class PlaceNames:
    """The place names of one index, ready to be found in query texts (build once per opened index).

    ``stored``: the catalog's place values; ``extra``: more names of some of them (GeoNames' alternate
    names of a city, see ``for_store``); ``centres``: (latitude, longitude) of those a radius can be
    drawn around ("near Lisbon")."""

    def __init__(
        self,
        stored: Iterable[str],
        extra: Mapping[str, Iterable[str]] | None = None,
        centres: Mapping[str, tuple[float, float]] | None = None,
    ):
        self.by_name: dict[str, str] = {}  # folded name -> stored value (the place filter's value)
        self.centres = dict(centres or {})
        extra = extra or {}
        for value in stored:
            value = str(value)
            if re.fullmatch(r"[A-Z]{2}", value):  # an ISO country code: match its names, never the code
                names: Iterable[str] = country_names(value)
            else:
                names = (value, *_alias_groups().get(fold(value), ()), *extra.get(value, ()))
            for name in names:
                folded = fold(" ".join(str(name).split()))
                if not folded or len(folded) < (MIN_UNSPACED if has_unspaced(folded) else MIN_LETTERS):
                    continue
                self.by_name.setdefault(folded, value)
                if folded.startswith("ال") and len(folded) > 3:  # Arabic "the": لل + name without ال ("to the …")
                    self.by_name.setdefault("لل" + folded[2:], value)
        self._index()

    @classmethod
    def for_store(cls, store, stored: Iterable[str]) -> "PlaceNames":
        """The names of ``stored`` place values, with GeoNames' names and positions of the store's cities."""
        from . import gazetteer

        centres_of = getattr(store, "place_centres", None)
        rows = centres_of() if centres_of is not None else []
        known = gazetteer.cities(rows)
        extra: dict[str, list[str]] = {}
        centres: dict[str, tuple[float, float]] = {}
        photos: dict[str, int] = {}
        for kind, name, country, latitude, longitude, count, *_ in rows:
            if not name or latitude is None or longitude is None:
                continue
            found = known.get((kind, str(name), str(country or "").upper()))
            if found is not None:
                extra.setdefault(name, []).extend(found.names)
            elif kind != "city":
                continue  # a region's centre is no place to draw a circle around ("near Bavaria" is Bavaria)
            if int(count) > photos.get(name, 0):  # a name in several countries: "near" means the one most photos have
                photos[name] = int(count)
                centres[name] = (found.latitude, found.longitude) if found else (float(latitude), float(longitude))
        return cls(stored, extra, centres)

    def _index(self) -> None:
        """Names by their first characters: a query is checked only against the few names starting where it is
        (one regular expression of every GeoNames name of a big library takes seconds to compile)."""
        self._spaced: dict[str, list[str]] = {}  # first ≤ 3 letters of the first word -> names, longest first
        self._unspaced: dict[str, list[str]] = {}  # first MIN_UNSPACED characters -> names, longest first
        self._first_words: dict[str, str] = {}
        for name in sorted(self.by_name, key=len, reverse=True):
            if has_unspaced(name):
                self._unspaced.setdefault(name[:MIN_UNSPACED], []).append(name)
            else:
                first = re.split(r"[\s-]+", name)[0]
                self._first_words[name] = first  # a cheap test before the name's pattern is compiled and tried
                self._spaced.setdefault(first[:3], []).append(name)
        self._patterns: dict[str, re.Pattern] = {}

    def matches(self, text: str | None) -> Iterator[NameMatch]:
        """Every indexed place named in ``text``, left to right (indices into ``text``)."""
        if not self.by_name or not text or not text.strip():
            return
        folded, origin = folded_with_origin(text)
        position = 0
        while position < len(folded):
            found = self._match_at(folded, position)
            if found is None:
                position += 1
                continue
            start, end, name_start, name_end, name = found
            yield NameMatch(
                self.by_name[name], origin[start], origin[end - 1] + 1, origin[name_start], origin[name_end - 1] + 1
            )
            position = max(end, position + 1)

    def _match_at(self, folded: str, position: int) -> tuple[int, int, int, int, str] | None:
        """(start, end, name start, name end, name) of a name starting at ``position`` of the folded text."""
        if has_unspaced(folded[position]):
            for name in self._unspaced.get(folded[position : position + MIN_UNSPACED], ()):
                if folded.startswith(name, position):
                    end = position + len(name)
                    before = _UNSPACED_BEFORE.search(folded, 0, position)
                    particle = _PARTICLE.match(folded, end)
                    return (
                        before.start() if before else position,
                        particle.end() if particle else end,
                        position,
                        end,
                        name,
                    )
            return None
        if not _WORD.match(folded, position) or (position and _WORD.match(folded, position - 1)):
            return None  # names start words
        for attached in (0, 1, 2):  # Arabic/Hebrew prepositions written onto the name: ببرلين, בברלין
            if attached and not _ATTACHED.fullmatch(folded, position, position + attached):
                continue
            start = position + attached
            candidates = sorted(
                {
                    name
                    for size in (3, 2, 1)
                    for name in self._spaced.get(folded[start : start + size], ())
                    if folded.startswith(self._first_words[name], start)
                },
                key=len,
                reverse=True,
            )
            for name in candidates:
                match = self._pattern(name).match(folded, start)
                if match is None:
                    continue
                end = match.end()
                post = _POSTPOSITION.match(folded, end)
                prep = _PREPOSITION.search(folded, 0, position)
                return prep.start() if prep else position, post.end() if post else end, start, match.end(), name
        return None

    def _pattern(self, name: str) -> re.Pattern:
        """A name with the inflections its script allows, as a whole word."""
        if name not in self._patterns:
            self._patterns[name] = re.compile(_spaced(name) + _ending(name) + r"(?!\w)")
        return self._patterns[name]

    def find(self, text: str | None) -> QueryPlace | None:
        """The first indexed place named in ``text`` (None if none, or if the index has no places)."""
        found = next(self.matches(text), None)
        if found is None:
            return None
        return QueryPlace(found.place, text[found.start : found.end].strip(), without(text, found.start, found.end))


def without(text: str, start: int, end: int) -> str:
    """``text`` with ``text[start:end]`` taken out, spaces and stray punctuation tidied."""
    rest = " ".join((text[:start] + " " + text[end:]).split())
    return re.sub(r"\s+([,.;:!?])", r"\1", rest).strip(" ,;:-")


def _spaced(name: str) -> str:
    """A folded name as a pattern where any run of spaces or a hyphen matches between its words."""
    return r"[\s-]+".join(re.escape(word) for word in re.split(r"[\s-]+", name))


_WORD = re.compile(r"\w")
_ATTACHED = re.compile(ATTACHED)
_PREPOSITION = re.compile(
    r"(?<!\w)(?:"
    + "|".join(_spaced(fold(word)) for word in sorted(set(PREPOSITIONS), key=len, reverse=True))
    + r")\s+$"
)
_POSTPOSITION = re.compile(r"\s+(?:" + "|".join(re.escape(fold(word)) for word in POSTPOSITIONS) + r")(?!\w)")
_UNSPACED_BEFORE = re.compile(fold(UNSPACED_BEFORE) + "$")
_PARTICLE = re.compile(PARTICLES)


def folded_with_origin(text: str) -> tuple[str, list[int]]:
    """``fold(text)`` and, for each of its characters, the index of the character of ``text`` it came from."""
    parts, origin = [], []
    for index, char in enumerate(text):
        folded = _fold_char(char)
        parts.append(folded)
        origin.extend([index] * len(folded))
    return "".join(parts), origin
