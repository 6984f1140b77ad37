"""The one generation prompt: describe, synthesise, self-evaluate and revise in one pass.

Messages use a neutral form (``{"type": "image", "path": ...}`` parts) that each backend
turns into its own wire format, so ``--dry-run`` shows exactly what every backend is asked.
"""

from __future__ import annotations

from .configure import SampleConfig
from .languages import NAMES

PROMPT_VERSION = "synth-v1"

SYSTEM = (
    "You create training data for a multilingual multimodal embedding model (mmE5). "
    "You look carefully at real images, write realistic data about them, criticise your own draft and "
    "improve it. You answer with one JSON object and nothing else."
)

TASK_GUIDE = {
    "classification": (
        "Classification: the instruction asks to classify the query along one clear dimension that the image "
        "supports (scene type, object category, activity, style, emotion, ...). The positive is the correct label "
        "or short category description; the hard negative is a plausible but wrong label from the same label set."
    ),
    "vqa": (
        "Visual question answering: the query is a question that can only be answered by looking at the image. "
        "The positive is the correct answer (a short phrase or sentence); the hard negative is a plausible, "
        "wrong answer to the same question."
    ),
    "retrieval": (
        "Retrieval: the instruction tells a search engine what to find for the query. The positive is the "
        "document the query must retrieve; the hard negative is a document that looks relevant but must not "
        "be retrieved."
    ),
}

EXAMPLE_INSTRUCTIONS = {
    "classification": "Identify the type of scene shown in the image.",
    "vqa": "Represent the given image with the following question:",
    "retrieval": "Find an everyday photo that matches the given description.",
}


def _side(has_image: bool, has_text: bool, role: str) -> str:
    if has_image and has_text:
        return f"the {role} image plus a text"
    return f"the {role} image alone" if has_image else "a text only"


def _field_rules(config: SampleConfig) -> list[str]:
    combo = config.combo
    rules = [
        '"instruction": in English, one sentence, general enough to reuse for similar samples, e.g. '
        f'"{EXAMPLE_INSTRUCTIONS[config.task]}"'
    ]
    if combo.query_text:
        hint = (
            "a question about the query image"
            if config.task == "vqa"
            else (
                "a text that, together with the query image, asks for the target (e.g. a modification or a question)"
                if combo.query_image
                else "a text that describes what is in the positive image, as a person would search"
            )
        )
        rules.append(f'"query": {hint}.')
    else:
        rules.append('"query": "" (empty: the query is the query image alone).')
    if combo.target_text:
        if combo.target_image:
            rules.append('"positive": a text that accompanies the positive image and, with it, answers the query.')
            rules.append(
                '"hard_negative": a text that accompanies the hard-negative image: similar topic, '
                "but it must not answer the query."
            )
        else:
            rules.append('"positive": the correct target text for the query. Do not copy or paraphrase the query.')
            rules.append('"hard_negative": a similar-looking target text that is wrong for the query.')
    else:
        rules.append(
            '"positive": "" and "hard_negative": "" (empty: the targets are the positive and hard-negative '
            "images themselves)."
        )
    return rules


def user_text(config: SampleConfig) -> str:
    combo = config.combo
    language = NAMES.get(config.language, config.language)
    query_side = _side(combo.query_image, combo.query_text, "query")
    target_side = _side(combo.target_image, combo.target_text, "positive")
    lines = [
        f"Task: {TASK_GUIDE[config.task]}",
        f"Modality combination {combo.name}: the query is {query_side}; each target document is {target_side}.",
        f"Language: write query, positive and hard_negative in {language} ({config.language}); "
        "write the instruction in English.",
        "",
        "Work in four steps and return them together as one JSON object:",
        '1. "description": a multi-grained description of the images: "general" (overall content), '
        '"objects" (object-level details: objects, attributes, counts, text in the image), "context" '
        '(contextual features: setting, time, culture, mood, purpose) and "brainstorm" (ideas for this task '
        "and combination that need the images to be solved).",
        '2. "data": a first draft with "instruction", "query", "positive", "hard_negative".',
        '3. "evaluation": judge the draft for "relevance" (does the positive truly match the query and the '
        'hard negative not?), "plausibility" (is it realistic?), "clarity" (is it unambiguous?) and "diversity" '
        '(is it more than a generic caption?), then list "improvements".',
        '4. "revised": the improved data, same four keys as "data". Only this part is kept.',
        "",
        "Rules for the data fields:",
        *(f"- {rule}" for rule in _field_rules(config)),
        "- Ground every statement in the images; do not invent details you cannot see.",
        "",
        'Answer with JSON only: {"description": {"general": "", "objects": "", "context": "", "brainstorm": ""}, '
        '"data": {"instruction": "", "query": "", "positive": "", "hard_negative": ""}, '
        '"evaluation": {"relevance": "", "plausibility": "", "clarity": "", "diversity": "", "improvements": ""}, '
        '"revised": {"instruction": "", "query": "", "positive": "", "hard_negative": ""}}',
    ]
    return "\n".join(lines)


def build_messages(config: SampleConfig) -> list[dict]:
    """System and user messages; images come first, each announced by its role."""
    content: list[dict] = []
    for number, (role, image) in enumerate(config.images, start=1):
        content.append({"type": "text", "text": f"Image {number} ({role} image):"})
        content.append({"type": "image", "path": image.path})
    content.append({"type": "text", "text": user_text(config)})
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]


def repair_messages(messages: list[dict], answer: str, problem: str) -> list[dict]:
    """The one repair attempt: show the model its answer and what is wrong with it."""
    return messages + [
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": (
                f"Your answer could not be used: {problem}. Reply again with the complete corrected JSON object, "
                "with every key of the required structure and nothing else."
            ),
        },
    ]


def render(messages: list[dict]) -> str:
    """Human-readable transcript for ``--dry-run``: texts verbatim, images by path."""
    out = []
    for message in messages:
        out.append(f"--- {message['role']} ---")
        content = message["content"]
        if isinstance(content, str):
            out.append(content)
            continue
        for part in content:
            out.append(part["text"] if part["type"] == "text" else f"[image: {part['path']}]")
    return "\n".join(out)
