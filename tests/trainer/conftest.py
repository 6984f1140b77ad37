"""Fixtures of the trainer tests: a toy multilingual shapes task generated on the fly."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mme5 import prompts, registry

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
CAPTIONS = {  # language -> (colour, shape) -> caption
    "en": lambda c, s: f"a {c} {s}",
    "es": lambda c, s: (
        f"un {dict(circle='círculo', square='cuadrado', triangle='triángulo')[s]} "
        f"{dict(red='rojo', green='verde', blue='azul')[c]}"
    ),
    "ru": lambda c, s: (
        f"{dict(red='красный', green='зелёный', blue='синий')[c]} "
        f"{dict(circle='круг', square='квадрат', triangle='треугольник')[s]}"
    ),
}
DOCUMENT = "<|image_1|>\nRepresent the given image.\n"  # MMEB form of mme5.prompts.IMAGE_DOCUMENT


def draw(colour: str, shape: str, rng: random.Random, side: int = 28) -> Image.Image:
    image = Image.new("RGB", (side, side), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    size = rng.randint(side - 10, side - 2)  # 28 px is 2x2 patches for the tiny model: keep shapes legible
    x, y = (side - size) // 2 + rng.randint(-1, 1), (side - size) // 2 + rng.randint(-1, 1)
    x, y = min(max(x, 0), side - size), min(max(y, 0), side - size)
    box = (x, y, x + size - 1, y + size - 1)
    fill = tuple(min(255, max(0, v + rng.randint(-25, 25))) for v in COLOURS[colour])
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(x, y + size - 1), (x + size - 1, y + size - 1), (x + size // 2, y)], fill=fill)
    return image


def make_toy(
    root: Path, family: str = "mllama", per_class_train: int = 4, per_class_test: int = 2, seed: int = 0
) -> dict:
    """Images + mmE5-schema JSONL (text -> image, 3 languages, hard negatives of a near class).

    Queries and documents are spelled as the search engine will embed them for ``family``:
    mmE5's instruction and image prompt for Mllama, bare captions and bare images for SigLIP.
    """
    document = DOCUMENT if family == "mllama" else ""
    rng = random.Random(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    classes = [(c, s) for c in COLOURS for s in SHAPES]
    split_files, labels = {}, {}
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        names = {}
        for colour, shape in classes:
            for n in range(count):
                # a camera's name, which says nothing: the search's file-name words must not give the class away
                name = f"{split}/IMG_{len(labels):04d}.png"
                labels[name] = f"{colour}-{shape}"
                (images / split).mkdir(exist_ok=True)
                draw(colour, shape, rng).save(images / name)
                names.setdefault((colour, shape), []).append(name)
        split_files[split] = names
    rows = []
    for (colour, shape), names in split_files["train"].items():
        near = [(c, s) for c, s in classes if (c == colour) != (s == shape)]  # shares exactly one attribute
        for name in names:
            for language, caption in CAPTIONS.items():
                negatives = rng.sample(near, 3)
                rows.append(
                    {
                        "qry": registry.build_prompt(
                            family, "text", caption(colour, shape), prompts.TEXT_TO_IMAGE_INSTRUCTION
                        ),
                        "qry_image_path": "",
                        "pos_text": document,
                        "pos_image_path": name,
                        "neg_text": str([document] * 3),
                        "neg_image_path": str([rng.choice(split_files["train"][n]) for n in negatives]),
                    }
                )
    rng.shuffle(rows)
    train_file = root / "train.jsonl"
    train_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    test = [(f"{c}-{s}", name) for (c, s), names in split_files["test"].items() for name in names]
    queries = [(f"{c}-{s}", language, caption(c, s)) for (c, s) in classes for language, caption in CAPTIONS.items()]
    return {
        "root": root,
        "images": images,
        "train": train_file,
        "test_images": test,
        "queries": queries,
        "labels": labels,
    }


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def cli_env():
    """Environment for CLI subprocesses (run with cwd=ROOT, so `-m trainer` finds the repo): offline, one thread each."""
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
