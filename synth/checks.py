"""Quality gates on revised data: language, copying, and near-duplicate queries."""
from __future__ import annotations

import re
import threading
import unicodedata

from .configure import SampleConfig
from .errors import SynthError
from .languages import check_language
from .schema import Data

COPY_SIMILARITY = 0.8       # character-trigram Jaccard at which two texts count as the same
DUPLICATE_SIMILARITY = 0.9  # ... and at which a new query counts as a near-duplicate of an earlier one


class Rejected(SynthError, ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def normalise(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form used for comparisons."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(char for char in text if not unicodedata.category(char).startswith(("P", "S")))
    return re.sub(r"\s+", " ", text).strip()


def trigrams(text: str) -> frozenset[str]:
    text = f" {normalise(text)} "
    return frozenset(text[i:i + 3] for i in range(len(text) - 2))


def similarity(a: str, b: str) -> float:
    grams_a, grams_b = trigrams(a), trigrams(b)
    if not grams_a or not grams_b:
        return 0.0
    return len(grams_a & grams_b) / len(grams_a | grams_b)


def check_data(data: Data, config: SampleConfig) -> None:
    """Raise Rejected when the revised data breaks a rule the paper's quality bar implies."""
    texts = {"query": data.query, "positive": data.positive, "hard_negative": data.hard_negative}
    for field, text in texts.items():
        if text:
            problem = check_language(text, config.language)
            if problem:
                raise Rejected("wrong_language", f"{field}: {problem}")
    problem = check_language(data.instruction, "en")
    if problem:
        raise Rejected("wrong_language", f"instruction: {problem}")
    if data.query and data.positive:
        query, positive = normalise(data.query), normalise(data.positive)
        if query in positive or positive in query or similarity(data.query, data.positive) >= COPY_SIMILARITY:
            raise Rejected("copied_positive", "the query repeats the positive; the pair teaches nothing")
    if data.positive and data.hard_negative and similarity(data.positive, data.hard_negative) >= COPY_SIMILARITY:
        raise Rejected("negative_equals_positive", "the hard negative repeats the positive")


class Deduplicator:
    """Drops queries that nearly repeat an earlier accepted one (same query image, or both text-only).

    Candidates are bucketed by query image and by their rarest trigrams, so a check costs a
    few comparisons instead of one per accepted sample.
    """

    def __init__(self, threshold: float = DUPLICATE_SIMILARITY):
        self.threshold = threshold
        self._buckets: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()

    def _keys(self, image: str, text: str) -> list[tuple[str, str]]:
        grams = sorted(trigrams(text))
        # Two texts with Jaccard >= 0.9 share most trigrams; sampling a fixed subset finds them.
        return [(image, gram) for gram in grams[: max(1, len(grams) // 4)]] or [(image, "")]

    def seen(self, image: str, text: str) -> bool:
        """True if a near-duplicate was seen before; otherwise remember this one."""
        with self._lock:
            keys = self._keys(image, text)
            for key in keys:
                for other in self._buckets.get(key, ()):
                    if normalise(other) == normalise(text) or similarity(other, text) >= self.threshold:
                        return True
            for key in keys:
                self._buckets.setdefault(key, []).append(text)
            return False
