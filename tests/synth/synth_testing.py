"""Test helpers for synth: photos drawn on disk, hand-made configurations, a chi-square check."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

from synth.configure import ImageRef, SampleConfig
from synth.tasks import Combo

# chi-square critical values at p = 0.001 by degrees of freedom: a correct sampler fails 1 seed in 1000
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32, 8: 26.12, 9: 27.88, 10: 29.59}


def chi_square(counts: Counter, weights: dict) -> float:
    total = sum(counts.values())
    return sum((counts.get(key, 0) - total * weight) ** 2 / (total * weight) for key, weight in weights.items())


def assert_matches(counts: Counter, weights: dict) -> None:
    """Observed counts are consistent with the configured weights (chi-square, p = 0.001)."""
    assert set(counts) <= set(weights)
    statistic = chi_square(counts, weights)
    assert statistic < CHI2_999[len(weights) - 1], (statistic, counts, weights)


def draw_photo(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    image = Image.new("RGB", (rng.randint(48, 96), rng.randint(48, 96)), tuple(rng.randint(0, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randint(0, 40), rng.randint(0, 40)
        box = (x, y, x + rng.randint(5, 40), y + rng.randint(5, 40))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    image.save(path, quality=90)


def make_config(photos: Path, task="retrieval", combo="IT->IT", language="de", index=0) -> SampleConfig:
    """A hand-made configuration over real photo files (for tests that need no pool)."""
    files = sorted(photos.rglob("*.jpg"))
    ref = lambda path: ImageRef(str(path), str(path.relative_to(photos)))  # noqa: E731
    combo = Combo(combo)
    query = ref(files[0]) if combo.query_image else None
    pos = ref(files[1]) if combo.target_image else None
    neg = ref(files[2]) if combo.target_image else None
    return SampleConfig(f"s0-{index:08d}", index, 0, task, combo, language, query, pos, neg)
