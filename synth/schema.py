"""The JSON the generator must answer with, validated with pydantic.

All four parts come back in one answer (paper: stages 2-4 in a single MLLM pass); only
``revised`` becomes training data, the rest is kept for inspection.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import SynthError
from .tasks import Combo


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Description(_Strict):
    general: str
    objects: str
    context: str
    brainstorm: str


class Data(_Strict):
    instruction: str
    query: str
    positive: str
    hard_negative: str


class Evaluation(_Strict):
    relevance: str
    plausibility: str
    clarity: str
    diversity: str
    improvements: str


class Generation(_Strict):
    description: Description
    data: Data
    evaluation: Evaluation
    revised: Data


def response_schema() -> dict:
    """``Generation`` as a strict JSON schema for ``response_format: json_schema``.

    OpenAI's strict mode (also vLLM's and Ollama's guided decoding) wants every object closed
    (``additionalProperties: false``) with all of its properties required.
    """
    schema = Generation.model_json_schema()

    def close(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


class GenerationError(SynthError, ValueError):
    """The answer is not usable; ``reason`` is a short category for statistics."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _json_object(text: str) -> dict:
    """The JSON object in an answer, tolerating a Markdown code fence around it."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as error:
        value = _embedded_object(stripped)
        if value is None:
            preview = stripped[:80].replace("\n", " ")
            raise GenerationError(
                "invalid_json", f"{error.msg} at char {error.pos} (answer starts {preview!r})"
            ) from None
    if not isinstance(value, dict):
        raise GenerationError("invalid_json", f"expected a JSON object, got {type(value).__name__}")
    return value


def _embedded_object(text: str) -> dict | None:
    """A complete JSON object inside chatter ("Sure! Here it is: {...}"), if there is one."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def required_fields(combo: Combo) -> list[str]:
    """Fields of ``revised`` that must be non-empty for this combination."""
    fields = ["instruction"]
    if combo.query_text:
        fields.append("query")
    if combo.target_text:
        fields += ["positive", "hard_negative"]
    return fields


def parse_generation(text: str, combo: Combo) -> Generation:
    """Validate an answer; raises GenerationError('invalid_json' | 'schema', detail)."""
    value = _json_object(text)
    try:
        generation = Generation.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg'].lower()}" for item in error.errors()[:5]
        )
        raise GenerationError("schema", problems) from None
    empty = [name for name in required_fields(combo) if not getattr(generation.revised, name)]
    if empty:
        raise GenerationError("schema", f"revised.{', revised.'.join(empty)} empty but required for {combo.name}")
    return generation
