"""Stage 1, data configuration: task, combination, language and images for each sample.

Everything about sample ``i`` follows from ``(seed, i)`` alone, so a killed run that is
started again recomputes exactly the same samples and can skip the finished ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .tasks import Combo

# Rank windows among an image's nearest neighbours (self and exact duplicates excluded, 1 = nearest).
POSITIVE_RANKS = (1, 3)  # the same scene or subject, seen differently
NEGATIVE_RANKS = (8, 30)  # similar enough to confuse a retriever, yet a different image


@dataclass(frozen=True)
class ImageRef:
    path: str  # absolute, for reading the pixels
    relpath: str  # relative to the run's image root, as written to the dataset


@dataclass(frozen=True)
class SampleConfig:
    sample_id: str
    index: int
    seed: int
    task: str
    combo: Combo
    language: str
    query_image: ImageRef | None
    pos_image: ImageRef | None
    neg_image: ImageRef | None

    @property
    def images(self) -> list[tuple[str, ImageRef]]:
        """(role, image) for every image the generator sees, in prompt order."""
        roles = (("query", self.query_image), ("positive", self.pos_image), ("hard negative", self.neg_image))
        return [(role, image) for role, image in roles if image is not None]


def sample_id(seed: int, index: int) -> str:
    return f"s{seed}-{index:08d}"


def _pick(rng: random.Random, weights: dict) -> object:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[key] for key in keys], k=1)[0]


class Configurator:
    """Draws sample configurations from weights and an image pool (see ``synth.pool``)."""

    def __init__(
        self,
        combo_weights: dict[tuple[str, str], float],
        language_weights: dict[str, float],
        pool,
        seed: int,
        positive_ranks: tuple[int, int] = POSITIVE_RANKS,
        negative_ranks: tuple[int, int] = NEGATIVE_RANKS,
    ):
        self.combo_weights = combo_weights
        self.language_weights = language_weights
        self.pool = pool
        self.seed = seed
        self.positive_ranks = positive_ranks
        self.negative_ranks = negative_ranks

    def __call__(self, index: int) -> SampleConfig:
        rng = random.Random(f"synth:{self.seed}:{index}")
        task, combo_name = _pick(rng, self.combo_weights)
        combo = Combo(combo_name)
        language = _pick(rng, self.language_weights)
        anchor = self.pool.random_image(rng)
        query = pos = neg = None
        if combo.query_image:
            query = self.pool.ref(anchor)
            if combo.target_image:
                positive = self.pool.neighbour(anchor, self.positive_ranks, rng)
                pos = self.pool.ref(positive)
                neg = self.pool.ref(self.pool.neighbour(anchor, self.negative_ranks, rng, exclude=(positive,)))
        else:  # text query: the drawn image is what the query must find
            pos = self.pool.ref(anchor)
            neg = self.pool.ref(self.pool.neighbour(anchor, self.negative_ranks, rng))
        return SampleConfig(sample_id(self.seed, index), index, self.seed, task, combo, language, query, pos, neg)
