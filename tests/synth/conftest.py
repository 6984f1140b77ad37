"""Fixtures for synth: real photos on disk, a real index over them, a scripted OpenAI server."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))  # fake_openai, answers (importlib mode adds nothing)

from synth.configure import ImageRef, SampleConfig  # noqa: E402
from synth.tasks import Combo  # noqa: E402

N_PHOTOS = 40


def draw_photo(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    image = Image.new("RGB", (rng.randint(48, 96), rng.randint(48, 96)),
                      tuple(rng.randint(0, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randint(0, 40), rng.randint(0, 40)
        box = (x, y, x + rng.randint(5, 40), y + rng.randint(5, 40))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    image.save(path, quality=90)


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for number in range(N_PHOTOS):
        sub = folder / ("trips" if number % 3 == 0 else "home")
        sub.mkdir(exist_ok=True)
        draw_photo(sub / f"photo_{number:02d}.jpg", seed=number)
    return folder


@pytest.fixture(scope="session")
def index_dir(photos, tiny_siglip, tmp_path_factory) -> Path:
    from indexer import build_index

    folder = tmp_path_factory.mktemp("index") / "index"
    build_index([photos], folder, tiny_siglip, show_progress=False)
    return folder


def make_config(photos: Path, task="retrieval", combo="IT->IT", language="de", index=0) -> SampleConfig:
    """A hand-made configuration over real photo files (for tests that need no pool)."""
    files = sorted(photos.rglob("*.jpg"))
    ref = lambda path: ImageRef(str(path), str(path.relative_to(photos)))  # noqa: E731
    combo = Combo(combo)
    query = ref(files[0]) if combo.query_image else None
    pos = ref(files[1]) if combo.target_image else None
    neg = ref(files[2]) if combo.target_image else None
    return SampleConfig(f"s0-{index:08d}", index, 0, task, combo, language, query, pos, neg)
