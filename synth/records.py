"""Revised data -> one row in the schema of ``intfloat/mmE5-synthetic``, plus metadata.

Texts are spelled exactly as MMEB-train rows and mme5's inference prompts (``mme5.prompts``):
the MMEB image placeholder (``<|image_1|>\\n``) wherever that side has an image, and every
instruction-bearing string (a query, an image document) ends with ``"\\n"``; a text-only
document is the bare text.  ``mme5.prompts.from_mmeb(row_text)`` therefore yields the very
string the app embeds at search time.  ``neg_text``/``neg_image_path`` are strings holding
Python lists, exactly as in the released dataset, so loaders written for it read ours unchanged.
"""

from __future__ import annotations

import json

from mme5.prompts import BOS, IMAGE_DOCUMENT, IMAGE_TOKEN, MMEB_IMAGE_PLACEHOLDER

from .configure import SampleConfig
from .prompt import PROMPT_VERSION
from .schema import Generation

SCHEMA_COLUMNS = ("qry", "qry_image_path", "pos_text", "pos_image_path", "neg_text", "neg_image_path")
METADATA_COLUMNS = ("task", "modality", "language", "generator", "prompt_version", "sample_id", "seed")
INSPECTION_COLUMNS = ("instruction", "query_text", "description", "draft", "evaluation")
# mmE5's own image-document prompt in MMEB form: "<|image_1|>\nRepresent the given image.\n"
IMAGE_ONLY_DOCUMENT = IMAGE_DOCUMENT.removeprefix(IMAGE_TOKEN + BOS)


def _line(text: str) -> str:
    """One instruction line as MMEB and mme5.prompts end it: stripped, then a single newline."""
    return text.strip() + "\n"


def _query(config: SampleConfig, instruction: str, query: str) -> str:
    text = _line(f"{instruction.strip()} {query.strip()}" if config.combo.query_text else instruction)
    return MMEB_IMAGE_PLACEHOLDER + text if config.combo.query_image else text


def _document(config: SampleConfig, text: str) -> str:
    if not config.combo.target_image:
        return text.strip()  # a text document is bare, as mme5.prompts.text_query(text) serves it
    return MMEB_IMAGE_PLACEHOLDER + (_line(text) if config.combo.target_text else IMAGE_ONLY_DOCUMENT)


def build_record(config: SampleConfig, generation: Generation, generator: str, usage: dict) -> dict:
    data = generation.revised
    return {
        "qry": _query(config, data.instruction, data.query),
        "qry_image_path": config.query_image.relpath if config.query_image else "",
        "pos_text": _document(config, data.positive),
        "pos_image_path": config.pos_image.relpath if config.pos_image else "",
        "neg_text": repr([_document(config, data.hard_negative)]),
        "neg_image_path": repr([config.neg_image.relpath if config.neg_image else ""]),
        "task": config.task,
        "modality": config.combo.name,
        "language": config.language,
        "generator": generator,
        "prompt_version": PROMPT_VERSION,
        "sample_id": config.sample_id,
        "seed": config.seed,
        "instruction": data.instruction,
        "query_text": data.query,
        "description": json.dumps(generation.description.model_dump(), ensure_ascii=False),
        "draft": json.dumps(generation.data.model_dump(), ensure_ascii=False),
        "evaluation": json.dumps(generation.evaluation.model_dump(), ensure_ascii=False),
        "usage": usage,
    }


ANSWER_EXCERPT = 2000  # characters of an unusable answer kept for inspection


def build_failure(
    config: SampleConfig,
    reason: str,
    detail: str,
    generator: str,
    usage: dict,
    retryable: bool = False,
    answer: str | None = None,
) -> dict:
    """A failed sample: why, what it cost and what the model said; ``retryable`` ones are tried again on resume."""
    return {
        "sample_id": config.sample_id,
        "task": config.task,
        "modality": config.combo.name,
        "language": config.language,
        "reason": reason,
        "detail": detail,
        "retryable": retryable,
        "generator": generator,
        "prompt_version": PROMPT_VERSION,
        "seed": config.seed,
        "usage": usage,
        "answer": answer[:ANSWER_EXCERPT] if answer else None,
    }


def dedup_text(record: dict) -> tuple[str, str]:
    """(query image, query text) that near-duplicate detection compares; the instruction when no text."""
    return record["qry_image_path"], record.get("query_text") or record.get("instruction") or record["qry"]
