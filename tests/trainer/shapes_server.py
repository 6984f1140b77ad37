"""A scripted OpenAI-compatible generator that really looks at the images it is sent.

It decodes each image from its data URL, finds the drawn shape's colour (nearest of red,
green, blue) and kind (fill ratio of its bounding box: square ~1, circle ~0.79, triangle
~0.5), and names them in the language the prompt asks for (en, es, ru). With ``lie=True``
it names a wrong class instead (training on that cannot help).
"""

from __future__ import annotations

import base64
import io
import json
import random
import re

import numpy as np
from PIL import Image

from ..synth.synth_fake_openai import FakeOpenAI, ok

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
NAMES = {
    "en": (
        {"red": "red", "green": "green", "blue": "blue"},
        {"circle": "circle", "square": "square", "triangle": "triangle"},
    ),
    "es": (
        {"red": "rojo", "green": "verde", "blue": "azul"},
        {"circle": "círculo", "square": "cuadrado", "triangle": "triángulo"},
    ),
    "ru": (
        {"red": "красный", "green": "зелёный", "blue": "синий"},
        {"circle": "круг", "square": "квадрат", "triangle": "треугольник"},
    ),
}
TEMPLATES = {
    "en": [
        "a {c} {s}",
        "a photo of a {c} {s}",
        "{c} {s} on white",
        "picture with a {c} {s}",
        "one {c} {s}",
        "the {c} {s} image",
        "a single {c} {s}",
        "simple {c} {s}",
    ],
    "es": [
        "un {s} {c}",
        "foto de un {s} {c}",
        "{s} {c} sobre blanco",
        "imagen con un {s} {c}",
        "un solo {s} {c}",
        "la imagen del {s} {c}",
        "dibujo de un {s} {c}",
        "un {s} {c} simple",
    ],
    "ru": [
        "{c} {s}",
        "фото: {c} {s}",
        "{c} {s} на белом",
        "картинка, где {c} {s}",
        "один {c} {s}",
        "изображение: {c} {s}",
        "рисунок: {c} {s}",
        "простой {c} {s}",
    ],
}


def look(url: str) -> tuple[str, str]:
    """(colour, shape) drawn in the image of a data URL."""
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    pixels = np.asarray(image).astype(np.int32)
    ink = pixels.min(axis=2) < 200  # not (near) white
    colour = min(COLOURS, key=lambda c: np.abs(pixels[ink].mean(axis=0) - COLOURS[c]).sum())
    rows, cols = np.where(ink)
    fill = ink.sum() / ((rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1))
    shape = "square" if fill > 0.9 else ("circle" if fill > 0.66 else "triangle")
    return colour, shape


def answer(request: dict, number: int, lie: bool = False) -> str:
    user = next(m for m in request["messages"] if m["role"] == "user")["content"]
    text = "\n".join(part.get("text", "") for part in user if part["type"] == "text")
    language = re.search(r"hard_negative in [^()]+ \(([\w-]+)\)", text).group(1)
    labels = [part["text"] for part in user if part["type"] == "text" and part["text"].startswith("Image ")]
    urls = [part["image_url"]["url"] for part in user if part["type"] == "image_url"]
    target = next(url for label, url in zip(labels, urls) if "(positive image)" in label)
    colour, shape = look(target)
    if lie:
        rng = random.Random(number)
        colour, shape = rng.choice([c for c in COLOURS if c != colour]), rng.choice([s for s in SHAPES if s != shape])
    colours, shapes = NAMES[language]
    query = random.Random(number).choice(TEMPLATES[language]).format(c=colours[colour], s=shapes[shape])
    data = {
        "instruction": "Find an everyday image that matches the given caption.",
        "query": query,
        "positive": "",
        "hard_negative": "",
    }
    return json.dumps(
        {
            "description": {
                "general": f"A {colour} {shape} on white.",
                "objects": f"one {shape}",
                "context": "a drawing",
                "brainstorm": "name colour and shape",
            },
            "data": data,
            "evaluation": {
                "relevance": "ok",
                "plausibility": "ok",
                "clarity": "ok",
                "diversity": "ok",
                "improvements": "none",
            },
            "revised": data,
        },
        ensure_ascii=False,
    )


def shapes_server(lie: bool = False) -> FakeOpenAI:
    return FakeOpenAI(lambda request, number: ok(answer(request, number, lie)))
