"""A radius typed into a query: "near Lisbon", "within 5 km of Lisbon", "в 5 км от Берлина", "ベルリンの近く", "قرب برلين".

The place is found as any typed place is (search_app/query_places.py: an indexed city, in any script and
inflection it covers); the words around it say it is a distance from the place, not the place itself.
Phrases are listed per language below, in two sets: words before the place (``BEFORE``) and words after
it (``AFTER``, for languages that put them there: Japanese, Chinese, Korean, Hindi, Turkish); ``{n}``
stands for a distance ("5 km", "2,5 km", "500 m", "3 miles", "5公里", "5 كم"). Without a distance the
radius is ``NEAR_DEFAULT_KM`` (search_app/limits.py). Like dates, the matched words leave the text the
model embeds; the radius becomes the ``near`` filter, shown as a chip ("within 5 km of Lisbon").
Only places with a known position count (cities: GeoNames' position, else where their photos are);
"near Bavaria" stays the place filter Bavaria.
"""

from __future__ import annotations

import re
from functools import lru_cache

from indexer.scripts import has_unspaced

from .geo import Near
from .limits import MAX_RADIUS_KM, NEAR_DEFAULT_KM
from .query_places import PlaceNames, QueryPlace, fold, folded_with_origin, without

# Words before the place ({n}: a distance). Written naturally; matched folded (case and accents ignored).
BEFORE = {
    "en": "near|near to|nearby|close to|around|within {n} of|within {n} from|within {n} around|{n} around|{n} from",
    "de": "in der Nähe von|in der Nähe|nahe|nahe bei|nahe von|in der Umgebung von|rund um|im Umland von|"
    "im Umkreis von {n} um|im Umkreis von {n} von|innerhalb von {n} um|innerhalb von {n} von|bis {n} von|"
    "{n} um|{n} von",
    "fr": "près de|à proximité de|autour de|aux alentours de|à moins de {n} de|dans un rayon de {n} autour de|"
    "dans un rayon de {n} de|à {n} de",
    "es": "cerca de|cerca del|alrededor de|en los alrededores de|junto a|a menos de {n} de|en un radio de {n} de|"
    "en un radio de {n} alrededor de|a {n} de",
    "pt": "perto de|perto do|perto da|próximo de|próximo a|nos arredores de|a menos de {n} de|num raio de {n} de|"
    "em um raio de {n} de|até {n} de|a {n} de",
    "it": "vicino a|vicino|nei pressi di|nei dintorni di|a meno di {n} da|entro {n} da|nel raggio di {n} da|a {n} da",
    "nl": "in de buurt van|nabij|rond|binnen {n} van|binnen {n} rond",
    "nordic": "nära|i närheten av|inom {n} från|nær|i nærheden af|i nærheten av",
    "pl": "w pobliżu|niedaleko|koło|obok|w promieniu {n} od|do {n} od|{n} od",
    "cs": "poblíž|nedaleko|u|v okolí|v okruhu {n} od|do {n} od",
    "ru": "рядом с|рядом со|недалеко от|неподалеку от|неподалёку от|около|возле|вблизи|под|в окрестностях|"
    "в {n} от|в радиусе {n} от|в пределах {n} от|не дальше {n} от|{n} от",
    "uk": "біля|поблизу|неподалік від|поруч з|за {n} від|в радіусі {n} від|у радіусі {n} від",
    "el": "κοντά σε|κοντά στο|κοντά στη|κοντά στην|κοντά στον|κοντά|γύρω από|σε ακτίνα {n} από",
    "ar": "قرب|بالقرب من|قريب من|قريبا من|حول|على بعد {n} من|ضمن {n} من|في حدود {n} من|في نطاق {n} من",
    "he": "ליד|בקרבת|סמוך ל|במרחק {n} מ|עד {n} מ",
    "zh": "距离|距|离",
    "th": "ใกล้|ใกล้ๆ|แถว|รอบๆ",
}
# Words after the place.
AFTER = {
    "ja": "の近く|近く|付近|周辺|近郊|の周り|から{n}以内|から{n}圏内",
    "zh": "附近|周边|周围|一带|{n}以内|{n}之内|{n}范围内|{n}内",
    "ko": "근처|주변|부근|에서 {n} 이내|에서 {n} 안",
    "hi": "के पास|के नज़दीक|के निकट|के आसपास|से {n} के भीतर|से {n} के अंदर|से {n} तक",
    "tr": "yakınında|yakınlarında|civarında|çevresinde|{n} yakınında",
}
# Distance units -> kilometres per unit.
UNITS = {
    1.0: "km|kms|kilometer|kilometers|kilometre|kilometres|kilometern|kilomètres|kilómetros|quilômetros|chilometri|"
    "kilometrów|kilometrů|км|километр|километра|километров|кілометр|кілометри|кілометрів|كم|كيلومتر|كيلومترات|"
    'ק"מ|ק״מ|קמ|キロ|キロメートル|公里|千米|킬로미터|किमी|किलोमीटर|χλμ|χιλιόμετρα|กม|กิโลเมตร',
    0.001: "m|meter|meters|metre|metres|metern|mètres|metros|metri|metrów|метров|метрів|м|メートル|米|미터|मीटर",
    1.609344: "mi|mile|miles|meile|meilen",
}
NUMBER = r"(?P<number>\d+(?:[.,]\d+)?)"
LETTER_AFTER = r"(?![a-zà-ɏа-яёіїєα-ω])"  # a unit ends where no Latin, Cyrillic or Greek letter follows
PHRASE_REACH = 80  # characters before or after a place name its near-words may take (the longest phrase, a number)


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern, dict[str, float]]:
    per_unit = {fold(word): factor for factor, words in UNITS.items() for word in words.split("|")}
    units = "|".join(map(re.escape, sorted(per_unit, key=len, reverse=True)))
    unit = "(?:" + units + ")" + LETTER_AFTER
    distance = NUMBER.replace("?P<number>", "?:") + r"\s*" + unit

    def phrase(text: str, where: str) -> str:
        words = fold(text)
        body = (r"\s*" + distance + r"\s*").join(
            r"\s+".join(map(re.escape, part.split(" "))) for part in words.split("{n}")
        )
        if where == "before" and not has_unspaced(words):
            return r"(?<!\w)" + body  # a whole word ("near", not "linear")
        if where == "after" and not has_unspaced(words):
            return body + r"(?!\w)"
        return body

    def phrases(table: dict, where: str) -> str:
        items = {item for words in table.values() for item in words.split("|")}
        return "|".join(phrase(item, where) for item in sorted(items, key=len, reverse=True))

    before = re.compile(r"(?:" + phrases(BEFORE, "before") + r")\s*$")
    after = re.compile(r"(?:['’][^\W\d_]{1,4})?\s*(?:" + phrases(AFTER, "after") + ")")
    return before, after, re.compile(NUMBER + r"\s*(?P<unit>" + units + ")" + LETTER_AFTER), per_unit


def find_near(text: str | None, names: PlaceNames) -> QueryPlace | None:
    """The first "near <place>" / "within <distance> of <place>" in ``text`` as a radius, or None."""
    if not text or not text.strip() or not names.centres:
        return None
    before_pattern, after_pattern, distance, per_unit = _patterns()
    folded, origin = folded_with_origin(text)
    at = {}  # index in text -> first index in folded
    for index in range(len(origin) - 1, -1, -1):
        at[origin[index]] = index
    for found in names.matches(text):
        centre = names.centres.get(found.place)
        if centre is None:
            continue
        name_start, name_end = at[found.name_start], at[found.name_end - 1] + 1
        while name_end < len(folded) and origin[name_end] == found.name_end - 1:
            name_end += 1  # past the last character's whole folded form
        before = before_pattern.search(folded, max(0, name_start - PHRASE_REACH), name_start)
        after = after_pattern.match(folded, name_end, min(len(folded), name_end + PHRASE_REACH))
        if before is None and after is None:
            continue
        km = NEAR_DEFAULT_KM
        for match in (before, after):
            if match is not None and (given := distance.search(match.group(0))):
                km = float(given.group("number").replace(",", ".")) * per_unit[given.group("unit")]
        if not 0 < km <= MAX_RADIUS_KM:
            continue
        start = (
            min(origin[before.start()], found.start)
            if before is not None and before.end() > before.start()
            else found.start
        )
        end = (
            max(found.end, origin[after.end() - 1] + 1)
            if after is not None and after.end() > after.start()
            else found.end
        )
        return QueryPlace(
            found.place, text[start:end].strip(), without(text, start, end), Near(centre[0], centre[1], round(km, 6))
        )
    return None
