"""Quality gates in isolation: language identification, copying, near-duplicates, JSON parsing."""

from __future__ import annotations

import pytest

from synth.checks import Deduplicator, Rejected, check_data, similarity
from synth.languages import check_language
from synth.schema import Data, GenerationError, parse_generation
from synth.tasks import Combo

from .synth_answers import answer
from .synth_testing import make_config


@pytest.mark.parametrize(
    "text, language, ok",
    [
        ("Ein rotes Fahrrad steht neben dem Fluss am späten Nachmittag.", "de", True),
        ("A red bicycle stands next to the river in the late afternoon.", "de", False),
        ("川のそばにある赤い自転車の写真を探しています。", "ja", True),
        ("Crveni bicikl stoji pored rijeke kasno poslijepodne.", "sr", True),  # hr/sr/bs are one judgement
        ("red bike", "de", True),  # too short to judge: not rejected on a guess
    ],
)
def test_language_check(text, language, ok):
    assert (check_language(text, language) is None) == ok


def test_near_duplicates_are_caught_per_query_image():
    dedup = Deduplicator()
    assert not dedup.seen("a.jpg", "Ein rotes Fahrrad steht neben dem Fluss am Nachmittag.")
    assert dedup.seen("a.jpg", "ein rotes Fahrrad steht neben dem Fluss am Nachmittag")  # case and punctuation
    assert not dedup.seen("b.jpg", "Ein rotes Fahrrad steht neben dem Fluss am Nachmittag.")  # another image
    assert not dedup.seen("a.jpg", "Eine schwarze Katze schläft unter einem großen Baum.")
    assert not dedup.seen("", "Zwei Kinder spielen am Strand mit einem Ball im Sommer.")
    assert dedup.seen("", "Zwei Kinder spielen am Strand mit einem Ball im Sommer!")


def test_negative_equal_to_positive_is_rejected(photos):
    config = make_config(photos, combo="IT->T", language="en")
    text = "A red bicycle is leaning against a brick wall next to the river."
    data = Data(
        instruction="Find the caption for the image.",
        query="What is next to the river?",
        positive=text,
        hard_negative=text.replace("red", "red,"),
    )
    with pytest.raises(Rejected) as rejected:
        check_data(data, config)
    assert rejected.value.reason == "negative_equals_positive"
    assert similarity(text, text.upper()) == 1.0


def test_json_in_a_code_fence_or_chatter_is_found_but_prose_is_not_json():
    import json

    body = json.dumps(answer("vqa", "IT->T", "en", 3))
    assert parse_generation(f"```json\n{body}\n```", Combo("IT->T")).revised.query
    assert parse_generation(f"Here you go: {body} Hope it helps!", Combo("IT->T")).revised.query
    with pytest.raises(GenerationError) as error:
        parse_generation("Here you go: the description is a cat {not json", Combo("IT->T"))
    assert error.value.reason == "invalid_json"
    with pytest.raises(GenerationError, match="expected a JSON object"):
        parse_generation("[1, 2]", Combo("IT->T"))


def test_minhash_filter_agrees_with_exhaustive_comparison_and_batches_like_single_checks():
    """Against brute force (every earlier query, exact trigram Jaccard): the LSH index misses nothing here."""
    import random

    rng = random.Random(7)
    words = [
        "rotes",
        "Fahrrad",
        "Fluss",
        "Katze",
        "Baum",
        "Strand",
        "Kinder",
        "Ball",
        "Sommer",
        "Abend",
        "Haus",
        "Brücke",
        "Hund",
        "Wolke",
        "Берег",
        "кошка",
        "дерево",
        "мост",
    ]
    items = []
    for number in range(400):
        if items and rng.random() < 0.3:  # a light rewrite of an earlier query: near-duplicate or not
            image, text = rng.choice(items)
            parts = text.split()
            parts[rng.randrange(len(parts))] = rng.choice(words)
            text = " ".join(parts).upper() if rng.random() < 0.5 else " ".join(parts) + "!"
        else:
            image, text = rng.choice(["a.jpg", "b.jpg", ""]), " ".join(rng.choices(words, k=rng.randint(8, 14)))
        items.append((image, text))
    kept, expected = [], []
    for image, text in items:
        duplicate = any(other_image == image and similarity(other, text) >= 0.9 for other_image, other in kept)
        expected.append(duplicate)
        if not duplicate:
            kept.append((image, text))
    single = Deduplicator()
    assert [single.seen(image, text) for image, text in items] == expected
    assert 20 < sum(expected) < 200  # the fixture exercises both outcomes
    assert Deduplicator().seen_many(items) == expected
