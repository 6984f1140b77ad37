"""Photos with planted text, for the OCR tests and benchmarks/bench_ocr.py: a sign (light plaque, dark
letters) on a textured, photo-like background, in the script's font from Debian's font packages
(fonts-dejavu-core: Latin, Cyrillic, Arabic; fonts-noto-cjk: CJK; fonts-noto-core: Devanagari)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONTS = {
    "latin": ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"],
    "cyrillic": ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"],
    "cjk": [
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    ],
    "arabic": [
        "/usr/share/fonts/truetype/noto/NotoSansArabic-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ],
    "devanagari": [
        "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Bold.ttf",
        "/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf",
    ],
}


def font_for(script: str) -> str | None:
    return next((path for path in FONTS[script] if Path(path).is_file()), None)


def texture(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth coloured background with film grain (compresses and edges like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray((rng.random((6, 9, 3)) * 120 + 60).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    grain = rng.normal(0, 10, (size[1], size[0], 1))
    return Image.fromarray(np.clip(np.asarray(low, dtype=np.float64) + grain, 0, 255).astype(np.uint8))


def sign_photo(
    text: str, script: str, seed: int = 0, size: tuple[int, int] = (640, 420), font_size: int = 64
) -> Image.Image:
    """``text`` on a plaque in the middle of a textured photo."""
    image = texture(size, seed)
    font_path = font_for(script)
    if font_path is None:
        raise FileNotFoundError(f"no font for {script} text: install fonts-noto-core / fonts-noto-cjk")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(font_path, font_size)
    box = draw.textbbox((0, 0), text, font=font)
    width, height = box[2] - box[0], box[3] - box[1]
    x, y = (size[0] - width) // 2, (size[1] - height) // 2
    draw.rectangle((x - 24, y - 24, x + width + 24, y + height + 30), fill=(245, 240, 230))
    draw.text((x - box[0], y - box[1]), text, font=font, fill=(20, 20, 60))
    return image
