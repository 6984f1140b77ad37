"""One definition of "a script written without spaces" (indexer/scripts.py), used by OCR, full-text search, place
names in queries and training pairs alike."""

from __future__ import annotations

import pytest

from indexer import fulltext, ocr
from indexer.scripts import has_unspaced, unspaced

UNSPACED = {
    "東": "Han",
    "𠮷": "Han, extension B",
    "あ": "hiragana",
    "カ": "katakana",
    "ｶ": "halfwidth katakana",
    "한": "Hangul syllable",
    "ㅎ": "Hangul compatibility jamo",
    "ก": "Thai",
    "ລ": "Lao",
    "က": "Myanmar",
    "ក": "Khmer",
    "ꀀ": "Yi",
    "ㄅ": "Bopomofo",
}
SPACED = {
    "a": "Latin",
    "é": "Latin with an accent",
    "я": "Cyrillic",
    "α": "Greek",
    "ب": "Arabic",
    "ש": "Hebrew",
    "क": "Devanagari",
    "ა": "Georgian",
    "7": "a digit",
    " ": "a space",
    "😀": "an emoji",
}


@pytest.mark.parametrize("char", UNSPACED)
def test_letters_of_unspaced_scripts(char):
    assert unspaced(char), UNSPACED[char]


@pytest.mark.parametrize("char", SPACED)
def test_letters_of_spaced_scripts_and_others(char):
    assert not unspaced(char), SPACED[char]


def test_a_text_has_an_unspaced_script_if_any_letter_is_one():
    assert has_unspaced("Cafe 東京") and has_unspaced("ไปกรุงเทพ")
    assert not has_unspaced("Café Lisboa") and not has_unspaced("")


def test_every_user_sees_the_same_definition():
    """OCR, full-text search and the query's place names ask the same question (no second copy to drift)."""
    from search_app import query_near, query_places
    from trainer import textpairs

    assert ocr.unspaced is fulltext.unspaced is unspaced
    assert ocr.has_unspaced is fulltext.has_unspaced is textpairs.has_unspaced is has_unspaced
    assert query_places.has_unspaced is query_near.has_unspaced is has_unspaced


def test_a_thai_word_is_found_inside_a_run_of_thai_as_a_cjk_one_is():
    """Thai writes no spaces between words: a sign's word is found inside the run, as Japanese always was."""
    normalized = fulltext.normalize("ถนนสุขุมวิท")  # "Sukhumvit Road"
    assert fulltext._find(normalized, fulltext.normalize("สุขุมวิท")) == (3, len(normalized))
    assert fulltext._find(fulltext.normalize("東京駅"), fulltext.normalize("京駅")) == (1, 3)
    # In a spaced script a word still has to start a word: "side" is not found in "seaside".
    assert fulltext._find(fulltext.normalize("seaside"), "side") is None


def test_ocr_glues_thai_pieces_back_together_as_it_does_cjk():
    assert ocr._join(["ถนน", "สุขุมวิท"]) == "ถนนสุขุมวิท"
    assert ocr._join(["東京", "駅"]) == "東京駅"
    assert ocr._join(["Hello", "world"]) == "Hello world"
