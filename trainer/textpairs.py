"""Free training pairs for ``trainer adapt --text-pairs``: the text OCR read in a photo, and its keywords and description, as
text-search queries for that photo.

A photo whose sign OCR read as "CAFÉ CENTRAL" gives the query "café central"; one tagged "Lisbon" gives "lisbon".
Only the training side's photos are read (a held-out photo, or a copy of one, never gives a pair: the split is by
content), only text that looks like words is kept (OCR junk such as ``|l1 ;:`` never becomes a query), at most
``PER_PHOTO`` queries per photo, one pair per query text (a word on many photos, "EXIT", teaches nothing and would
be a false in-batch negative), none that a synthetic sample already pairs with the same photo, and at most
``limit`` in all. File names alone never give a pair (a camera's IMG_0042 says nothing; the user did not write it).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from indexer.scripts import has_unspaced

PER_PHOTO = 2  # queries per photo: OCR lines first, then keywords, then the description
MAX_WORDS = 8  # a longer line or description is cut to its first words (a query, not a paragraph)
MIN_LETTERS = 3  # fewer letters in a whole query: too short to mean anything ("ok", "a b")
SOURCES = ("ocr", "keywords", "description")
# Cyrillic letters drawn like Latin ones (and з like 3): a Latin sign read by the Cyrillic pass comes out in them
# ("BAKERY" -> "ВАКЕКУ", "THEATER" -> "ТНЕАТЕВ")
LATIN_LOOKALIKES = set("АВЕЁКМНОРСТХУЗавеёкмнорстхуз")


@dataclass(frozen=True)
class TextPair:
    query: str
    photo: int  # image id
    path: str  # absolute
    source: str  # one of SOURCES


def _real_word(word: str) -> bool:
    """Letters only (inner apostrophes, hyphens and dots allowed: l'été, e-mail, St.), two or more of them unless an
    ideograph, and not one letter repeated (``lll``, ``ii``: strokes OCR took for letters)."""
    core = word.strip(".'’-")
    if not core or not all(char.isalpha() or char in "'’-." for char in core):
        return False
    letters = "".join(char for char in core if char.isalpha())
    if has_unspaced(letters):
        return True
    return len(letters) >= 2 and len({char.casefold() for char in letters}) > 1


def query_of(text: str) -> str | None:
    """``text`` (one OCR line, keyword or description) as a query a person would type, or None if it is not words.

    Every word must be a real word (``_real_word``): a line with a digit-letter mix or a stray symbol is OCR noise
    more often than not, so it is dropped whole rather than mended. Numbers alone and punctuation between words are
    dropped; case is folded (a sign's capitals are not how people search)."""
    words = [word.strip(',;:!?"()[]«»“”') for word in text.split()]
    words = [word for word in words if word and not re.fullmatch(r"[\d.,:/-]+", word)]  # 1998, 12:30, 3.5
    if not words or not all(_real_word(word) for word in words):
        return None
    words = words[:MAX_WORDS]
    if sum(char.isalpha() for word in words for char in word) < MIN_LETTERS and not has_unspaced("".join(words)):
        return None
    return " ".join(words).lower()


def _latin(char: str) -> bool:
    return char.isalpha() and (ord(char) < 0x250 or 0x1E00 <= ord(char) < 0x1F00)


def misread_latin(line: str, lines: list[str]) -> bool:
    """``line`` is the Cyrillic pass's reading of a Latin sign: every letter one of ``LATIN_LOOKALIKES``, and the
    photo has a Latin line. (A real Cyrillic word nearly always has a letter Latin lacks: КАФЕ, АПТЕКА.)"""
    letters = [char for char in line if char.isalpha()]
    return (
        bool(letters)
        and all(char in LATIN_LOOKALIKES for char in letters)
        and any(any(_latin(char) for char in other) for other in lines)
    )


def queries_of(ocr: str, keywords: str, description: str) -> list[tuple[str, str]]:
    """(query, source) for one photo, at most ``PER_PHOTO``, OCR lines first; no query twice."""
    found: dict[str, str] = {}
    lines = ocr.splitlines()
    candidates = [(line, "ocr") for line in lines if not misread_latin(line, lines)]
    candidates += [(keyword, "keywords") for keyword in keywords.splitlines()]
    candidates += [(line, "description") for line in description.splitlines()]
    for text, source in candidates:
        query = query_of(text)
        if query is not None and query not in found:
            found[query] = source
        if len(found) == PER_PHOTO:
            break
    return list(found.items())


def text_pairs(store, train_ids: list[int], taken: set[tuple[str, str]], limit: int, seed: int) -> list[TextPair]:
    """Pairs from the training photos ``train_ids`` of ``store`` (an open IndexStore), in a seeded order, at most
    ``limit``; ``taken`` holds (query, absolute path) pairs synthesis already made (lower-cased queries)."""
    from indexer.fulltext import photo_texts

    if limit <= 0:
        return []
    records = [r for start in range(0, len(train_ids), 1000) for r in store.records(train_ids[start : start + 1000])]
    records = [r for r in records if r is not None]
    texts = photo_texts(store.catalog, [r.id for r in records])
    by_query: dict[str, TextPair] = {}
    seen_content: set[str] = set()
    for record in sorted(records, key=lambda r: r.id):
        content = record.content_hash or record.path
        if content in seen_content:  # a copy: the same pairs again would only weigh it twice
            continue
        seen_content.add(content)
        text = texts.get(record.id, {})
        for query, source in queries_of(text.get("ocr", ""), text.get("keywords", ""), text.get("description", "")):
            if query in by_query or (query, record.path) in taken:
                continue
            by_query[query] = TextPair(query, record.id, record.path, source)
    pairs = list(by_query.values())
    random.Random(seed).shuffle(pairs)  # the cap keeps a fair sample, not the first photos of the library
    return pairs[:limit]


def training_row(pair: TextPair) -> dict:
    """A pair as ``trainer adapt``'s other training rows: the app's text-search prompt, the photo as document,
    in-batch negatives only."""
    from mme5.prompts import MMEB_IMAGE_PLACEHOLDER
    from synth.records import IMAGE_ONLY_DOCUMENT

    from .data import app_query

    return {
        "qry": app_query(pair.query, "T->I"),
        "qry_image_path": "",
        "pos_text": MMEB_IMAGE_PLACEHOLDER + IMAGE_ONLY_DOCUMENT,
        "pos_image_path": pair.path,
        "neg_text": "[]",
        "neg_image_path": "[]",
        "language": "",
        "modality": "T->I",
    }


def counts(pairs: list[TextPair]) -> dict:
    by_source = {source: sum(p.source == source for p in pairs) for source in SOURCES}
    return {"pairs": len(pairs), "by_source": by_source, "photos": len({p.photo for p in pairs})}
