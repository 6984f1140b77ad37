"""Synthetic rows are spelled exactly as MMEB-train rows and as mme5.prompts builds the app's inputs."""

from __future__ import annotations

from ast import literal_eval

import pytest

from mme5 import prompts
from synth.records import build_record
from synth.schema import Data, Description, Evaluation, Generation
from .synth_testing import make_config

COMPOSED = "Given an image, find a similar everyday image with the described changes:"
SIMILAR = "Find a day-to-day image that looks similar to the provided image."


def record(photos, combo: str, instruction: str, query: str = "", positive: str = "", negative: str = "") -> dict:
    revised = Data(instruction=instruction, query=query, positive=positive, hard_negative=negative)
    generation = Generation(
        description=Description(general="g", objects="o", context="c", brainstorm="b"),
        data=revised,
        evaluation=Evaluation(relevance="r", plausibility="p", clarity="c", diversity="d", improvements="i"),
        revised=revised,
    )
    return build_record(make_config(photos, combo=combo), generation, "fake", {})


def served(row: dict, side: str) -> str:
    """What training feeds the model for one side of a row (the trainer's rewrite)."""
    text = row["qry"] if side == "qry" else (row["pos_text"] if side == "pos" else literal_eval(row["neg_text"])[0])
    image = (
        row["qry_image_path"]
        if side == "qry"
        else (row["pos_image_path"] if side == "pos" else literal_eval(row["neg_image_path"])[0])
    )
    return prompts.from_mmeb(text, bool(image))


def test_text_to_image_matches_the_search_query_and_image_document(photos):
    row = record(photos, "T->I", prompts.TEXT_TO_IMAGE_INSTRUCTION, query="un círculo rojo")
    assert row["qry"] == "Find me an everyday image that matches the given caption: un círculo rojo\n"
    assert served(row, "qry") == prompts.text_to_image_query("un círculo rojo")
    assert row["pos_text"] == "<|image_1|>\nRepresent the given image.\n"  # MMEB-train's image document
    assert served(row, "pos") == served(row, "neg") == prompts.image_document()


def test_image_and_composed_queries_match_the_app(photos):
    assert served(record(photos, "I->I", SIMILAR), "qry") == prompts.image_to_image_query()
    row = record(photos, "IT->I", COMPOSED, query="but at night")
    assert row["qry"] == f"<|image_1|>\n{COMPOSED} but at night\n"
    assert served(row, "qry") == prompts.composed_query("but at night")


@pytest.mark.parametrize("instruction", ["Identify the scene type.", "  Identify the scene type. \n"])
def test_image_instruction_queries_end_with_exactly_one_newline(photos, instruction):
    row = record(photos, "I->T", instruction, positive=" a beach ", negative="a forest")
    assert served(row, "qry") == prompts.image_instruction("Identify the scene type.")
    assert row["qry"].endswith(".\n") and not row["qry"].endswith("\n\n")
    assert row["pos_text"] == prompts.text_query("a beach") == "a beach"  # text documents stay bare
    assert literal_eval(row["neg_text"]) == ["a forest"]


def test_image_plus_text_documents_are_instruction_lines(photos):
    row = record(photos, "IT->IT", "Find the matching post.", query="q text", positive="pos text", negative="neg text")
    assert row["pos_text"] == "<|image_1|>\npos text\n"
    assert served(row, "pos") == prompts.image_instruction("pos text")
    assert served(row, "neg") == prompts.image_instruction("neg text")
