"""Text in photos (OCR) at index time: Tesseract 5, on the CPU, one recognition pass per script.

Why Tesseract: Debian/Ubuntu/Homebrew ship it with Apache-2.0 LSTM models for every script the
issue names (``tesseract-ocr-{eng,rus,jpn,chi-sim,ara,hin}``), so it runs fully offline. The
RapidOCR wheel (PP-OCR through ONNX Runtime) ships only its Chinese/Latin/Japanese recogniser;
Cyrillic, Arabic and Devanagari models are downloaded at first use, which a test (and many
users' machines) cannot do. Tesseract reading several languages in one pass (``-l eng+rus+jpn``)
was both slower and far worse on our fixtures than one pass per script, so each installed
script gets its own pass (``--psm 11``, sparse text: signs, labels, captions) and only words
recognised with confidence are kept.

A cheap detection pass first (``text_regions``: strong-edge density in 4-pixel tiles, tens of ms)
skips photos without text-like detail, so most of a library never reaches recognition, and hands
Tesseract only the regions that look like text, stacked on a white page (``text_page``): on our
fixtures of signs on textured backgrounds that took it from 13 of 25 to 25 of 25 words found.
Every photo is bounded: its pixels are decoded within the build's decode budget, the copy handed
to Tesseract is at most ``MAX_SIDE`` pixels on its longer side, and each pass has a time limit;
a failure is the photo's OCR error, never the build's.
"""

from __future__ import annotations

import logging
import os
import signal
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mme5.errors import ImageError
from mme5.images import load_image, to_rgb

from .errors import IndexerError
from .scripts import has_unspaced, unspaced

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
# (script, Tesseract language) in the order tried; the first installed language of each script is used
SCRIPT_LANGUAGES = (
    ("Latin", ("eng", "deu", "fra", "spa", "ita", "por", "nld")),
    ("Cyrillic", ("rus", "ukr", "bul", "srp")),
    ("CJK (Japanese)", ("jpn",)),
    ("CJK (Chinese)", ("chi_sim", "chi_tra")),
    ("Korean", ("kor",)),
    ("Arabic", ("ara", "fas", "urd")),
    ("Devanagari", ("hin", "mar", "nep")),
)
STOP_POLL_S = 0.25  # how often a running Tesseract pass looks whether the build is stopping
MAX_SIDE = 2400  # longer side handed to Tesseract: a 100-megapixel screenshot becomes ~6 MP
DETECT_TILE = 4  # pixels per side of a detection tile
MAX_REGIONS = 32  # text regions recognised per photo
PASS_TIMEOUT = 30.0  # seconds per recognition pass (the photo's OCR fails, and is reported, beyond it)
PHOTO_TIMEOUT = 90.0  # seconds for all of a photo's passes together
MIN_CONFIDENCE = 60  # Tesseract word confidence (0-100) a word needs to be kept
MAX_TEXT_CHARS = 20_000  # stored per photo (a page of tiny text is kept in part)


class OcrUnavailableError(IndexerError):
    """``--ocr on`` without a usable Tesseract (the message says what to install)."""


@dataclass(frozen=True)
class OcrEngine:
    """A found Tesseract binary and the recognition pass of each script it has a language for."""

    binary: str
    version: str
    passes: tuple[tuple[str, str], ...]  # (script, language)

    @property
    def scripts(self) -> list[str]:
        return [script for script, _ in self.passes]

    @property
    def signature(self) -> str:
        """What produced a stored text (kept with it in the catalog)."""
        return f"tesseract {self.version} " + "+".join(language for _, language in self.passes)

    def describe(self) -> str:
        return f"OCR: Tesseract {self.version}, scripts: " + ", ".join(
            f"{script} ({language})" for script, language in self.passes
        )


@dataclass
class OcrOutcome:
    """What OCR made of one photo: ``text`` ("" when none), ``detected`` whether the detection pass let it
    through to recognition, ``error`` a reason when it failed (the photo is then indexed without text)."""

    text: str = ""
    detected: bool = False
    error: str | None = None


def find_engine(binary: str | None = None) -> OcrEngine | None:
    """Tesseract on PATH (or ``binary``) with at least one known script's language, else None."""
    binary = binary or shutil.which("tesseract")
    if not binary:
        return None
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20)
        listed = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("tesseract at %s does not run (%s): OCR is off", binary, error)
        return None
    languages = set(listed.stdout.split())
    passes = tuple(
        (script, next(code for code in codes if code in languages))
        for script, codes in SCRIPT_LANGUAGES
        if any(code in languages for code in codes)
    )
    if not passes:
        return None
    match = re.search(r"tesseract\s+v?([\d.]+)", version.stdout + version.stderr)
    return OcrEngine(binary, match.group(1) if match else "?", passes)


def engine_for(mode: str, binary: str | None = None) -> OcrEngine | None:
    """The engine ``--ocr MODE`` asks for: None for off (and for auto without Tesseract);
    OcrUnavailableError for ``on`` without it."""
    if mode not in MODES:
        raise ValueError(f"unknown OCR mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "off":
        return None
    engine = find_engine(binary)
    if engine is None and mode == "on":
        raise OcrUnavailableError(
            "--ocr on: Tesseract with language data was not found; install it (Debian/Ubuntu: apt install "
            "tesseract-ocr tesseract-ocr-rus tesseract-ocr-jpn tesseract-ocr-chi-sim tesseract-ocr-ara "
            "tesseract-ocr-hin; macOS: brew install tesseract tesseract-lang) or use --ocr off"
        )
    return engine


def text_regions(gray: Image.Image) -> list[tuple[int, int, int, int]]:
    """The cheap detection pass: boxes (left, top, right, bottom) of the parts of the photo that look like text.

        Text is dense, high-contrast strokes: 4x4 tiles with at least 10% of their pixels on an edge stronger
        than 48 grey levels, closed along lines (letters of a word join), grouped into connected regions of at
        least 3 tiles each way (thinner ones are lines and edges), words of a line joined (``_join_lines``),
    the ``MAX_REGIONS`` largest kept, each padded by a tile. Sky, skin, blur, film grain and
        smooth gradients give none, so recognition never runs on them; foliage and gravel may (recognition
        then finds nothing, at a cost in time, not in results). ~20 ms for a 2400-pixel photo."""
    pixels = np.asarray(gray)
    tile = DETECT_TILE
    rows, cols = pixels.shape[0] // tile, pixels.shape[1] // tile
    if rows < 2 or cols < 2:
        return []
    tiles = np.zeros((rows, cols), dtype=bool)
    for first in range(0, rows, 64):  # strips of 256 pixel rows: a few MB of temporaries, whatever the photo
        last = min(rows, first + 64)
        above = 1 if first else 0
        strip = pixels[first * tile - above : last * tile, : cols * tile].astype(np.int16)
        edges = np.zeros(strip.shape, dtype=bool)
        edges[:, 1:] |= np.abs(np.diff(strip, axis=1)) > 48
        edges[1:, :] |= np.abs(np.diff(strip, axis=0)) > 48
        edges = edges[above:]
        tiles[first:last] = edges.reshape(last - first, tile, cols, tile).mean(axis=(1, 3)) >= 0.1
    tiles = _close_rows(tiles)
    boxes = []
    for top, bottom, left, right in _components(tiles):
        if min(bottom - top, right - left) >= 3:  # thinner: a line or an edge (text that small is unreadable)
            boxes.append(
                (
                    max(0, (left - 1) * tile),
                    max(0, (top - 1) * tile),
                    min(pixels.shape[1], (right + 1) * tile),
                    min(pixels.shape[0], (bottom + 1) * tile),
                )
            )
    boxes = _join_lines(boxes)
    boxes.sort(key=lambda box: -(box[2] - box[0]) * (box[3] - box[1]))
    return boxes[:MAX_REGIONS]


def _close_rows(tiles: np.ndarray) -> np.ndarray:
    """Morphological closing along rows with a 3-wide element: one-tile gaps between strokes are filled."""
    grown = tiles.copy()
    grown[:, 1:] |= tiles[:, :-1]
    grown[:, :-1] |= tiles[:, 1:]
    shrunk = grown.copy()
    shrunk[:, 1:] &= grown[:, :-1]
    shrunk[:, :-1] &= grown[:, 1:]
    return shrunk | tiles


def _components(tiles: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (top, bottom, left, right; ends exclusive) of the 8-connected groups of set tiles."""
    seen = np.zeros(tiles.shape, dtype=bool)
    rows, cols = tiles.shape
    boxes = []
    for start in zip(*np.nonzero(tiles)):
        if seen[start]:
            continue
        seen[start] = True
        stack, top, bottom, left, right = [start], start[0], start[0], start[1], start[1]
        while stack:
            row, col = stack.pop()
            top, bottom, left, right = min(top, row), max(bottom, row), min(left, col), max(right, col)
            for near_row in range(max(row - 1, 0), min(row + 2, rows)):
                for near_col in range(max(col - 1, 0), min(col + 2, cols)):
                    if tiles[near_row, near_col] and not seen[near_row, near_col]:
                        seen[near_row, near_col] = True
                        stack.append((near_row, near_col))
        boxes.append((int(top), int(bottom) + 1, int(left), int(right) + 1))
    return boxes


def _join_lines(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Words of one line are separate regions (the space between them): join regions that share most of their
    height and lie closer than that height, so a sign's words reach Tesseract as one line."""
    boxes = sorted(boxes)
    joined = True
    while joined:
        joined = False
        for i, first in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                second = boxes[j]
                overlap = min(first[3], second[3]) - max(first[1], second[1])
                height = max(first[3] - first[1], second[3] - second[1])
                gap = max(second[0] - first[2], first[0] - second[2])
                lower = min(first[3] - first[1], second[3] - second[1])
                if overlap >= 0.7 * height and lower >= 0.6 * height and gap <= height:
                    boxes[i] = (
                        min(first[0], second[0]),
                        min(first[1], second[1]),
                        max(first[2], second[2]),
                        max(first[3], second[3]),
                    )
                    del boxes[j]
                    joined = True
                    break
            if joined:
                break
    return boxes


def text_page(image: Image.Image, boxes) -> Image.Image:
    """The detected regions stacked on a white page: Tesseract reads them far better without the rest of the
    photo (textured backgrounds ruin its page layout analysis), and one page costs one run per script."""
    crops = []
    height = 20
    for box in sorted(boxes, key=lambda box: (box[1], box[0])):  # reading order, roughly
        crop = image.crop(box)
        if height + crop.height + 20 > 2 * MAX_SIDE:
            break  # a photo full of text: the rest is left out (bounded time and memory)
        crops.append(crop)
        height += crop.height + 20
    page = Image.new(image.mode, (max(crop.width for crop in crops) + 40, height), "white")
    top = 20
    for crop in crops:
        page.paste(crop, (20, top))
        top += crop.height + 20
    return page


def recognize(engine: OcrEngine, path: str, budget=None, timeout: float | None = None) -> OcrOutcome:
    """OCR one photo file: ``prepare`` its text page, then ``read_page``. Never raises for a bad photo or a
    failing Tesseract: the reason is the outcome's ``error``."""
    with tempfile.TemporaryDirectory(prefix="mme5-ocr-") as folder:
        prepared = prepare(path, os.path.join(folder, "page.png"), budget)
        return prepared if isinstance(prepared, OcrOutcome) else read_page(engine, prepared, timeout)


def prepare(path: str, page: str, budget=None) -> OcrOutcome | str:
    """Decode the photo (within ``budget``, an indexer.reader.DecodeBudget), detect its text regions and write
    them as a page to the file ``page``: returns ``page``, or the final outcome when there is nothing to read
    (no text-like region, an unreadable photo). The build runs this in one thread, one photo at a time, and
    only ``read_page`` in parallel: big decodes never pile up in several threads' memory."""
    from contextlib import nullcontext

    with budget.hold(_decoded_pixels(path)) if budget is not None else nullcontext():
        try:
            image = _upright(path)
        except ImageError as error:
            return OcrOutcome(error=f"OCR could not read the photo ({error.reason})")
        except Exception as error:  # noqa: BLE001 - a decoder bug on one file must not stop the build
            return OcrOutcome(error=f"OCR could not read the photo ({type(error).__name__}: {error})")
        return _write_page(image, page)


def prepare_frame(path: str, seconds: float, page: str, budget=None, pixels: int | None = None) -> OcrOutcome | str:
    """``prepare`` for the frame a video shows at ``seconds`` (a keyframe row: indexer/video_rows.py), decoded
    upright at most MAX_SIDE pixels on its longer side, within ``budget`` like a photo (``pixels``: the video's
    frame size as the catalog has it; a full frame is decoded before it is shrunk)."""
    from contextlib import nullcontext

    from .video import VideoError, frame_at

    with budget.hold(max(pixels or 0, MAX_SIDE * MAX_SIDE)) if budget is not None else nullcontext():
        try:
            image = frame_at(path, seconds, MAX_SIDE).convert("RGB")
        except VideoError as error:
            return OcrOutcome(error=f"OCR could not read the frame at {seconds:.1f} s ({error.reason})")
        return _write_page(image, page)


def _write_page(image: Image.Image, page: str) -> OcrOutcome | str:
    """The text-like regions of ``image`` stacked on a page written to ``page``; no regions: an empty outcome."""
    boxes = text_regions(image.convert("L"))
    if not boxes:
        return OcrOutcome()
    text_page(image, boxes).save(page)  # colour: Tesseract binarises it better than a grey copy
    return page


def _decoded_pixels(path: str) -> int:
    """Pixels a decode of ``path`` holds (a JPEG at the reduced scale ``_upright`` asks for); 0 if unreadable."""
    try:
        with Image.open(path) as opened:
            if opened.format == "JPEG":
                opened.draft("RGB", (MAX_SIDE, MAX_SIDE))
            return opened.size[0] * opened.size[1]
    except Exception:  # noqa: BLE001 - _upright says what is wrong
        return 0


class Interrupted(Exception):
    """The build is stopping (Ctrl-C, SIGTERM): a running Tesseract pass was ended."""


def read_page(engine: OcrEngine, page: str, timeout: float | None = None, stop=None) -> OcrOutcome:
    """One recognition pass per script over a page from ``prepare``, within PASS_TIMEOUT each and PHOTO_TIMEOUT
    in all. ``stop`` (a threading.Event): once set, the running pass is killed and Interrupted raised, so a build
    that is told to stop does not wait up to PHOTO_TIMEOUT per worker for passes nobody will keep."""
    timeout = PASS_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + PHOTO_TIMEOUT
    lines: list[str] = []
    for script, language in engine.passes:
        if stop is not None and stop.is_set():
            raise Interrupted(f"stopped before the {script} pass")
        left = deadline - time.monotonic()
        if left <= 0:
            return OcrOutcome(
                detected=True,
                error=f"OCR took more than {PHOTO_TIMEOUT:g} s for this photo "
                f"(stopped before the {script} pass); indexed without its text",
            )
        try:
            lines += _one_pass(engine.binary, page, language, min(timeout, left), stop)
        except subprocess.TimeoutExpired:
            return OcrOutcome(
                detected=True,
                error=f"OCR timed out after {min(timeout, left):g} s ({script} pass); indexed without its text",
            )
        except (OSError, subprocess.SubprocessError, ValueError) as error:
            return OcrOutcome(detected=True, error=f"OCR failed ({script} pass: {error}); indexed without its text")
    text = "\n".join(dict.fromkeys(line for line in lines if line))  # one copy of a line two passes agree on
    return OcrOutcome(text=text[:MAX_TEXT_CHARS], detected=True)


def _upright(path: str) -> Image.Image:
    """The photo as an upright RGB image of at most MAX_SIDE pixels.

    Shrunk in its own mode before anything else (a greyscale scan is not first made three times larger), so
    a photo costs its decode and little more; RAW files go through mme5's loader, which decodes them reduced."""
    from mme5.raw import is_raw

    if is_raw(path):
        image = load_image(path, draft_size=MAX_SIDE)
    else:
        with Image.open(path) as opened:
            if opened.format == "JPEG":
                opened.draft("RGB", (MAX_SIDE, MAX_SIDE))
            opened.load()
            opened.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
            image = to_rgb(opened.copy())  # to_rgb turns it upright (EXIF orientation), as for the model
    return image


def _one_pass(binary: str, page: str, language: str, timeout: float, stop=None) -> list[str]:
    """The confident words of one Tesseract pass, joined back into their lines (see ``read_page`` for ``stop``)."""
    with subprocess.Popen(
        [binary, page, "stdout", "-l", language, "--psm", "11", "tsv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, OMP_THREAD_LIMIT="1"),
        start_new_session=os.name == "posix",  # its own process group: a kill ends whatever it started too
    ) as process:
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = process.communicate(timeout=max(0.01, min(STOP_POLL_S, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                stopping = stop is not None and stop.is_set()
                if stopping or time.monotonic() >= deadline:
                    _kill_group(process)
                    process.communicate()
                    if stopping:
                        raise Interrupted(f"the {language} pass was stopped") from None
                    raise subprocess.TimeoutExpired(process.args, timeout) from None
    if process.returncode != 0:
        raise ValueError(stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or f"exit {process.returncode}")
    lines: dict[tuple, list[str]] = {}
    for row in stdout.decode("utf-8", "replace").splitlines()[1:]:
        parts = row.split("\t")
        if len(parts) != 12 or parts[0] != "5":
            continue
        word = parts[11].strip()
        try:
            confidence = float(parts[10])
        except ValueError:
            continue
        if confidence >= MIN_CONFIDENCE and _wordlike(word):
            lines.setdefault(tuple(parts[1:5]), []).append(word)
    return [_join(words) for words in lines.values()]


def _kill_group(process: subprocess.Popen) -> None:
    """End a pass and any process it started (a wrapper script's child would keep its output pipe open, so
    reading it would wait for that child however long it runs)."""
    if os.name == "posix":
        try:
            os.killpg(process.pid, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            pass
    process.kill()


def _wordlike(word: str) -> bool:
    """Two letters or digits at least, or one ideograph/kana: a lone symbol is noise."""
    letters = "".join(char for char in word if char.isalnum())
    return len(letters) >= 2 or has_unspaced(letters)


def _join(words: list[str]) -> str:
    """Tesseract splits unspaced scripts into pieces (東京 駅): put them back together."""
    text = words[0]
    for word in words[1:]:
        text += word if unspaced(text[-1]) and unspaced(word[0]) else " " + word
    return text
