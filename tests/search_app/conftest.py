"""A small photo library with capture dates, folders, an identical copy and a symlink trap, indexed once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..conftest import (  # noqa: F401 - defined once, there
    HOMES,
    SERVER_LOGS,
    free_port,
    new_home,
    user_environment,
    wait_for_server,
)

REPO = Path(__file__).resolve().parents[2]

# relpath -> capture date (EXIF DateTimeOriginal) or None
LIBRARY = {
    "2023/beach/red.jpg": "2023:07:14 10:00:00",
    "2023/beach/orange.jpg": "2023:07:15 16:30:00",
    "2023/city/blue.jpg": "2023:11:02 09:15:00",
    "2024/green.jpg": "2024:03:01 08:00:00",
    "2024/yellow.jpg": "2024:03:01 18:00:00",
    "2024/purple.png": None,
    "20241/cyan.jpg": "2024:12:24 20:00:00",
    "misc/gray.jpg": None,
    "misc/stripes.jpg": None,
    "misc/checker.jpg": None,
    "misc/noise.jpg": None,
}
COPY_OF_RED = "copies/red-copy.jpg"  # byte-identical to 2023/beach/red.jpg


COLOURS = {
    "red": (220, 30, 30),
    "orange": (240, 140, 20),
    "blue": (30, 60, 220),
    "green": (30, 180, 60),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "cyan": (30, 210, 220),
    "gray": (128, 128, 128),
}


def make_photo(path: Path, seed: int, taken: str | None) -> None:
    """A small, distinct picture (the colour its name says, or a random one, plus noise).

    JPEGs carry the capture date in EXIF, as a camera writes it.
    """
    rng = np.random.default_rng(seed)
    base = np.asarray(COLOURS.get(path.stem, rng.integers(0, 256, size=3)))
    pixels = np.clip(base + rng.normal(0, 40, size=(48 + seed, 64, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        image.save(path)
        return
    exif = Image.Exif()
    if taken:
        exif[306] = taken  # DateTime
        exif.get_ifd(0x8769)[36867] = taken  # DateTimeOriginal
    image.save(path, "JPEG", quality=90, exif=exif.tobytes())


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("library") / "photos"
    for seed, (relpath, taken) in enumerate(LIBRARY.items()):
        make_photo(root / relpath, seed, taken)
    (root / COPY_OF_RED).parent.mkdir(parents=True)
    shutil.copyfile(root / "2023/beach/red.jpg", root / COPY_OF_RED)
    outside = tmp_path_factory.mktemp("outside")
    make_photo(outside / "secret.jpg", 99, None)
    (outside / "secret.txt").write_text("not for you")
    return root


@pytest.fixture(scope="session")
def outside_dir(library) -> Path:
    return next(library.parent.parent.glob("outside*"))


@pytest.fixture(scope="session")
def index_dir(library, tiny_mllama, tmp_path_factory) -> Path:
    from indexer import build_index

    index = tmp_path_factory.mktemp("index") / "idx"
    summary = build_index([library], index, tiny_mllama, show_progress=False)
    assert not summary.errors and summary.added == len(LIBRARY) + 1
    return index


@pytest.fixture(scope="session")
def engine(index_dir, tiny_mllama):
    from indexer import IndexStore

    from search_app.engine import SearchEngine

    engine = SearchEngine(IndexStore.open(index_dir), tiny_mllama)
    yield engine
    engine.close()


# The user's own settings: an app subprocess inherits none of them (not even the MME5_CACHE_DIR tests/conftest.py
# sets), so it keeps its caches where a default install does; a test passes one in ``env`` only when it is about it.
@contextmanager
def running_app(
    work: Path,
    args: list[str],
    env: dict | None = None,
    cwd: Path = REPO,
    timeout: float = 400,
    log_name: str = "app.log",
    home: Path | None = None,
):
    """`python app.py ARGS` (run from ``cwd``) on a free 127.0.0.1 port until the block ends: yields the URL.

    The app runs as the user's machine runs it: ``home`` (default: a fresh one, removed afterwards) as HOME, none of
    the user's XDG_/MME5_/GRADIO_ settings unless ``env`` gives them. Its output goes to ``work / log_name``; it
    is stopped (terminate, then kill) however the block ends.
    """
    port = free_port()
    log = work / log_name
    with ExitStack() as stack:
        home = home or stack.enter_context(new_home())
        environment = user_environment(home, env)
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, str(REPO / "app.py"), *args, "--port", str(port)],
                cwd=cwd,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}/"
        SERVER_LOGS.append(log)
        try:
            wait_for_server(process, url, log, timeout=timeout)
            yield url
        finally:
            SERVER_LOGS.remove(log)
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="session")
def served_app(tmp_path_factory, library, tiny_mllama_dir):
    """`python app.py` in a subprocess, indexing ``library`` on first start: (url, index_dir).

    One app for the whole session: the modules that only need a running app (the API and the browser tests) share it
    instead of each starting and indexing its own. They may save albums in it, never change its photos."""
    work = tmp_path_factory.mktemp("app")
    index = work / "index"
    args = [
        "--index",
        str(index),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(library),
        "--concurrency",
        "1",
        "--page-size",
        "5",
    ]
    with running_app(work, args, cwd=library) as url:  # run from the photo folder, as a person does
        yield url, index


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where browser tests leave screenshots and reports (ARTIFACTS_DIR, else ./artifacts)."""
    folder = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, one per test module (tests/search_app/test_browser.py's flags)."""
    from playwright.sync_api import sync_playwright

    from .test_browser import CHROMIUM, FLAGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def desktop_page(browser):
    """A 1280 x 1000 page of the module's browser, waiting up to 60 s for each step."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    yield page
    page.close()


def settled(page):
    """Wait until no event of the page is pending (Gradio's progress overlays gone): a search's follow-up steps
    (focus, dates in the browser's language) or Clear's (the newest photos) can still be on their way when the status
    has arrived, and a click, an upload or a scan meanwhile meets a page that is being redrawn."""
    page.wait_for_function(
        "() => !document.querySelector('.progress-level, .eta-bar, .wrap.pending, .wrap.generating')"
    )


AXE = Path(os.environ.get("AXE_CORE_JS") or REPO / ".cache/npm/node_modules/axe-core/axe.min.js")
AXE_SECONDS = 120  # a scan of one page state takes 1-5 s here


def axe_serious(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now.

    Bounded: a scan with no answer in AXE_SECONDS fails the test, because nothing else would end it (page.evaluate
    has no timeout of its own, and pytest-timeout's alarm cannot break into Playwright's event loop)."""
    assert AXE.is_file(), (
        f"{AXE} missing: run `npm install --prefix .cache/npm axe-core@4.14.1` (the CI script does) or set AXE_CORE_JS"
    )
    page.add_script_tag(path=str(AXE))
    report = page.evaluate(
        """(ms) => Promise.race([
            axe.run(document, {resultTypes: ['violations']}),
            new Promise((_, fail) => setTimeout(() => fail(new Error(`axe gave no answer in ${ms} ms`)), ms)),
        ])""",
        AXE_SECONDS * 1000,
    )
    return [violation for violation in report["violations"] if violation["impact"] in ("serious", "critical")]
