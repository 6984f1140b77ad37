"""Scripts written without spaces between words: one definition for OCR, full-text search, place names in queries
and training pairs.

Han, kana, Hangul, Thai, Lao, Khmer, Myanmar and Yi: a word or a name is found inside a run of letters, and one
letter can be a word. Korean puts spaces between words, but particles join them (서울에서, "in Seoul"), so a
place name is looked for inside them too."""

from __future__ import annotations

import re

_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0xA4CF),  # CJK radicals and symbols, kana, Bopomofo, Hangul compatibility jamo, CJK ideographs, Yi
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF65, 0xFFDC),  # halfwidth katakana and Hangul
    (0x20000, 0x3FFFF),  # CJK ideographs, extensions B and later
)


# One character class of the ranges: a search runs in C (the place index tests ~145,000 GeoNames names at start-up).
_LETTER = re.compile("[" + "".join(f"{chr(low)}-{chr(high)}" for low, high in _RANGES) + "]")


def unspaced(char: str) -> bool:
    """Is ``char`` a letter of a script written without spaces?"""
    return _LETTER.fullmatch(char) is not None


def has_unspaced(text: str) -> bool:
    """Does ``text`` have a letter of a script written without spaces?"""
    return _LETTER.search(text) is not None
