"""Place names typed into a query ("beach Lisbon", "praia em Lisboa", "пляж в Лиссабоне", "リスボンの海").

Only names of places where indexed photos were taken count (the catalog's country, region and city,
named offline from GeoNames at index time; see indexer/places.py), so a word fires only if it names
one of them. Matching ignores case and accents and takes whole words (a Cyrillic name may carry a
short case ending: "Лиссабоне"); names in CJK scripts match inside the text, which has no spaces.
Other-language names come from CLDR via ``babel`` for countries (the catalog stores ISO codes,
which themselves are never matched: "it", "de", "no" are words) and from ``ALIASES`` below for a
few cities and regions. A matched name is removed from the embedded text and becomes the place
filter, shown as a removable chip.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from .query_dates import LANGUAGES

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
PREPOSITIONS = ("in im in der nach bei near at around à a au aux en em no na nel nella a di de da do dans près de "
                "cerca de в во под около w we na pod koło v ve u i på ved nära bij").split()
MIN_LETTERS = 3  # shorter non-CJK names (and ISO codes) are too often ordinary words
CYRILLIC_ENDING = r"[а-яёіїє]{0,2}"  # Russian/Ukrainian case endings: Лиссабон -> Лиссабоне, Москва -> Москве


@dataclass(frozen=True)
class QueryPlace:
    """A place read from a query: the indexed value applied as the place filter, the words, the text left."""

    place: str
    matched: str
    rest: str

    def to_json(self) -> dict:
        return {"place": self.place, "matched": self.matched}


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a name: "Málaga" -> "malaga", "Zürich" -> "zurich"."""
    return "".join(_fold_char(char) for char in text)


def _fold_char(char: str) -> str:
    if char in "йЙёЁїЇ":  # letters of their own in Cyrillic, not accented ones (keeps Москве ≠ Москвe)
        return char.lower()
    return "".join(part for part in unicodedata.normalize("NFKD", char) if not unicodedata.combining(part)).casefold()


def _cjk(text: str) -> bool:
    return any(ord(char) >= 0x2E80 for char in text)


def _cyrillic(text: str) -> bool:
    return any("\u0400" <= char <= "\u04ff" for char in text)


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
    """The country's names in the query-date languages (CLDR via babel; none if babel is missing)."""
    try:
        from babel import Locale
    except ImportError:
        return ()
    names = []
    for language in LANGUAGES:
        try:
            name = Locale.parse(language).territories.get(code.upper())
        except (ValueError, LookupError):  # a locale babel does not ship
            continue
        if name:
            names.append(name)
    return tuple(dict.fromkeys(names))


class PlaceNames:
    """The place names of one index, ready to be found in query texts (build once per opened index)."""

    def __init__(self, stored: Iterable[str]):
        self.by_name: dict[str, str] = {}  # folded name -> stored value (the place filter's value)
        for value in stored:
            value = str(value)
            if re.fullmatch(r"[A-Z]{2}", value):  # an ISO country code: match its names, never the code
                names: Iterable[str] = country_names(value)
            else:
                names = (value, *_alias_groups().get(fold(value), ()))
            for name in names:
                folded = fold(" ".join(name.split()))
                if folded and (_cjk(folded) or len(folded) >= MIN_LETTERS):
                    self.by_name.setdefault(folded, value)
        self.pattern = self._compile() if self.by_name else None

    def _compile(self) -> re.Pattern:
        names = sorted(self.by_name, key=len, reverse=True)
        spaced = [_spaced(name) + (CYRILLIC_ENDING if _cyrillic(name) else "") for name in names if not _cjk(name)]
        cjk = [re.escape(name) for name in names if _cjk(name)]
        prep = r"(?:(?P<prep>" + "|".join(_spaced(fold(w)) for w in sorted(set(PREPOSITIONS), key=len, reverse=True)) \
            + r")\s+)?"
        parts = []
        if spaced:
            parts.append(r"(?<!\w)" + prep + r"(?P<name>" + "|".join(spaced) + r")(?!\w)")
        if cjk:
            parts.append(r"(?P<cjk>" + "|".join(cjk) + r")(?:の|的|에서|에)?")
        return re.compile("|".join(parts))

    def find(self, text: str | None) -> QueryPlace | None:
        """The first indexed place named in ``text`` (None if none, or if the index has no places)."""
        if self.pattern is None or not text or not text.strip():
            return None
        folded, origin = _folded_with_origin(text)
        match = self.pattern.search(folded)
        if match is None:
            return None
        name = match.group("name") if "name" in self.pattern.groupindex and match.group("name") else match.group("cjk")
        place = self.by_name.get(_unended(name, self.by_name))
        if place is None:
            return None
        start, end = origin[match.start()], origin[match.end() - 1] + 1
        rest = " ".join((text[:start] + " " + text[end:]).split())
        rest = re.sub(r"\s+([,.;:!?])", r"\1", rest).strip(" ,;:-")
        return QueryPlace(place, text[start:end].strip(), rest)


def _spaced(name: str) -> str:
    """A folded name as a pattern where any run of spaces or a hyphen matches between its words."""
    return r"[\s-]+".join(re.escape(word) for word in re.split(r"[\s-]+", name))


def _unended(name: str, known: dict[str, str]) -> str:
    """The known name a match stands for: as matched, or without a Cyrillic case ending."""
    name = " ".join(re.split(r"[\s-]+", name))
    for cut in range(len(name), max(len(name) - 3, 0), -1):
        for candidate in (name[:cut], name[:cut].replace(" ", "-")):
            if candidate in known:
                return candidate
    return name


def _folded_with_origin(text: str) -> tuple[str, list[int]]:
    """``fold(text)`` and, for each of its characters, the index of the character of ``text`` it came from."""
    parts, origin = [], []
    for index, char in enumerate(text):
        folded = _fold_char(char)
        parts.append(folded)
        origin.extend([index] * len(folded))
    return "".join(parts), origin
