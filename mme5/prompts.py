"""Prompt formats, the single source of truth for every package in this repo.

mmE5 (Mllama backbone) was trained on exactly these strings; any drift (a missing
newline, a space after ``<|begin_of_text|>``) silently costs retrieval quality, so
nothing outside this module may spell a prompt.  Dual encoders (SigLIP/CLIP) were
trained on bare captions and take no instruction.
"""

from __future__ import annotations

from .errors import InputError

PROMPT_VERSION = "mme5-2025-02-27"  # reference repo HEAD 4818cdf "align data format with model training"

IMAGE_TOKEN = "<|image|>"
BOS = "<|begin_of_text|>"
MMEB_IMAGE_PLACEHOLDER = "<|image_1|>\n"  # Phi-3.5-V token used by MMEB / mmE5 datasets

IMAGE_DOCUMENT = f"{IMAGE_TOKEN}{BOS}Represent the given image.\n"
TEXT_TO_IMAGE_INSTRUCTION = "Find me an everyday image that matches the given caption:"
IMAGE_TO_IMAGE_QUERY = f"{IMAGE_TOKEN}{BOS}Find a day-to-day image that looks similar to the provided image.\n"
COMPOSED_QUERY = (
    f"{IMAGE_TOKEN}{BOS}Given an image, find a similar everyday image with the described changes: {{text}}\n"
)
GENERIC_IMAGE = f"{IMAGE_TOKEN}{BOS}{{instruction}}\n"
GENERIC_TEXT = "{instruction} {text}\n"


def image_document() -> str:
    """Prompt for an image stored in the index."""
    return IMAGE_DOCUMENT


def text_query(text: str, instruction: str | None = None) -> str:
    """A text query with an instruction, or a plain text document when ``instruction`` is None."""
    if instruction is None:
        return text
    return GENERIC_TEXT.format(instruction=instruction.strip(), text=text)


def text_to_image_query(text: str) -> str:
    """The query that searches images by caption (``Find me an everyday image ...``)."""
    return text_query(text, TEXT_TO_IMAGE_INSTRUCTION)


def image_to_image_query() -> str:
    return IMAGE_TO_IMAGE_QUERY


def composed_query(text: str) -> str:
    """Image plus modifying text ("this photo, but at night")."""
    return COMPOSED_QUERY.format(text=text)


def image_instruction(instruction: str) -> str:
    """An image with a free instruction, e.g. a VQA question."""
    return GENERIC_IMAGE.format(instruction=instruction.strip())


def from_mmeb(text: str, has_image: bool) -> str:
    """Rewrite an MMEB/mmE5-dataset text (``<|image_1|>\\n...``) into the Mllama format.

    Mirrors the reference collator: with an image the placeholder becomes
    ``<|image|><|begin_of_text|>``; without one, ``<|begin_of_text|>`` (which the
    processor would add anyway).
    """
    replacement = f"{IMAGE_TOKEN}{BOS}" if has_image else BOS
    if MMEB_IMAGE_PLACEHOLDER in text:
        return text.replace(MMEB_IMAGE_PLACEHOLDER, replacement)
    if "<|image_1|>" in text:
        return text.replace("<|image_1|>", replacement)
    return replacement + text if has_image else text


def strip_image_tokens(text: str) -> str:
    """Text as a dual encoder should see it: no image/BOS markers, no trailing newline."""
    for token in (MMEB_IMAGE_PLACEHOLDER, "<|image_1|>", IMAGE_TOKEN, BOS):
        text = text.replace(token, "")
    return text.strip()


def mllama_prompt(task: str, text: str | None = None, instruction: str | None = None) -> str:
    """mmE5's format for each task (see ``mme5.registry.build_prompt``)."""
    if task == "image_document":
        return image_document()
    if task == "text":
        return text_query(_required(task, "text", text), instruction)
    if task == "image_query":
        return image_to_image_query()
    if task == "composed":
        return composed_query(_required(task, "text", text))
    if task == "image_instruction":
        return image_instruction(_required(task, "instruction", instruction))
    raise InputError(f"unknown task {task!r}")


def _required(task: str, what: str, value: str | None) -> str:
    """A prompt's part that the task needs; without it the prompt would read "None" (or fail on None.strip())."""
    if value is None:
        raise InputError(f"a {task!r} prompt needs a {what}, got None")
    return value


def dual_prompt(task: str, text: str | None = None, instruction: str | None = None) -> str | None:
    """Dual encoders get the bare caption: SigLIP/CLIP were trained without instructions,
    and a composed query fuses the image and text vectors."""
    if task in ("image_document", "image_query", "image_instruction"):
        return None
    if task in ("text", "composed"):
        return text
    raise InputError(f"unknown task {task!r}")
