"""The user's world: the project run as a person's machine runs it, not as the other tests' fixtures do.

A fresh ``HOME`` under /var/tmp (outside the system temp directory and outside the repo; made and removed here),
an environment built from scratch (no ``XDG_*``, ``MME5_*``, ``TMPDIR`` or ``GRADIO_*`` inherited, not even the
``MME5_CACHE_DIR`` tests/conftest.py sets for the rest of the suite), a fresh copy of the checkout in that
``HOME`` (what a clone holds: tracked and not-ignored files, with ``.venv`` standing for the one its README's Quick
start creates), a photo folder as the current directory, and the commands as the README writes them.

Why: the other app tests keep the cache under the system temp directory (``XDG_CACHE_HOME``, ``TMPDIR``), which
Gradio happens to serve from, so every one of them passed while every browser search failed on a default install
(previews in ``~/.cache`` were refused by Gradio). These tests see what a user sees.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..conftest import free_port, wait_for_server

REPO = Path(__file__).resolve().parents[2]
BASE = Path("/var/tmp")  # survives reboots on most systems, and is not what tempfile.gettempdir() answers
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
CLONE_NAME = "mme5-photo-search"


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


class UserWorld:
    """One user's machine: ``home``, a fresh ``clone`` of the repo in it, a ``photos`` folder (~/Pictures).

    ``run(args, cwd)`` runs ``python ARGS`` (the clone's ``.venv`` first on PATH, as after activating it) with
    the user's environment; ``app(args)`` serves ``python app.py ARGS`` on a free port until the block ends.
    """

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.clone = self.home / CLONE_NAME
        self.photos = self.home / "Pictures"
        self.logs = root / "logs"
        for folder in (self.home, self.photos, self.logs):
            folder.mkdir(parents=True)
        system_temp = Path(tempfile.gettempdir())
        assert not _inside(self.home, system_temp) and not _inside(system_temp, self.home), (self.home, system_temp)
        assert not _inside(self.home, REPO) and not _inside(REPO, self.home), (self.home, REPO)
        self._copy_checkout()
        self.env = {
            "PATH": f"{self.clone / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            # Tests never touch a hub (the README's offline use: HF_HUB_OFFLINE=1); without it an unreachable hub
            # would cost minutes of retries instead of failing the test at once.
            "HF_HUB_OFFLINE": "1",
        }

    @property
    def python(self) -> str:
        return str(self.clone / ".venv" / "bin" / "python")

    @property
    def cache(self) -> Path:
        """The app's cache folder where a default install keeps it."""
        return self.home / ".cache" / "mme5-search"

    def _copy_checkout(self) -> None:
        """What `git clone` of this checkout would give (uncommitted work included), without its build outputs."""
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout.split(b"\0")
        for name in filter(None, listed):
            source = REPO / os.fsdecode(name)
            if not source.is_file() or source.name == ".venv":  # deleted but not yet committed; the venv link
                continue
            target = self.clone / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        # The Quick start's `python3 -m venv .venv && .venv/bin/pip install -r requirements.txt`, already done: the
        # test's own environment (installing takes minutes and needs the network).
        (self.clone / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)

    def run(
        self,
        args: list[str],
        cwd: Path | None = None,
        timeout: float = 600,
        input: str | None = None,
        check: bool = True,
        program: str = "python",
    ) -> subprocess.CompletedProcess:
        """``program ARGS`` from ``cwd`` (default: the photo folder), as typed in the user's terminal."""
        done = subprocess.run(
            [program, *args],
            cwd=cwd or self.photos,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            start_new_session=True,
        )  # no terminal: getpass reads stdin
        if check and done.returncode != 0:
            raise AssertionError(
                f"{program} {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def app(
        self,
        args: list[str],
        cwd: Path | None = None,
        program: str = "python",
        timeout: float = 400,
        log_name: str = "app.log",
    ):
        """``program ARGS --port N`` (an app start) from ``cwd`` until the block ends: yields the URL."""
        return _serve(self, args, cwd, program, timeout, log_name)


@contextmanager
def _serve(world: UserWorld, args: list[str], cwd: Path | None, program: str, timeout: float, log_name: str):
    port = free_port()
    log = world.logs / log_name
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [program, *args, "--port", str(port)],
            cwd=cwd or world.photos,
            env=world.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(process, url, log, timeout)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the app's own process group (start_new_session)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def user_world():
    """A fresh user's machine for one test module, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="mme5-userworld-", dir=BASE))
    try:
        yield UserWorld(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where the screenshots go (ARTIFACTS_DIR, else the repo's git-ignored artifacts/)."""
    folder = Path(os.environ.get("ARTIFACTS_DIR") or REPO / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright (one per module; each test opens its own context)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def open_page(browser, url: str, size: str):
    """A new browser context of ``size`` (SIZES) on ``url``, with downloads on; close ``page.context`` after."""
    context = browser.new_context(viewport=SIZES[size], accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(url)
    return page


def wait_status(page, text: str) -> None:
    page.wait_for_function("(t) => document.querySelector('#status').innerText.includes(t)", arg=text)


class Library:
    """The user's photos (the sample photos, one identical copy), a tiny model and an index, made with the CLIs."""

    def __init__(self, world: UserWorld):
        self.world = world
        samples = sorted(path for path in (world.clone / "assets" / "photos").rglob("*.jpg"))
        for path in samples:
            target = world.photos / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        self.copy = world.photos / "copies" / samples[0].name  # an identical copy: one group of near-identical photos
        self.copy.parent.mkdir()
        shutil.copyfile(samples[0], self.copy)
        self.photos = sorted(path.relative_to(world.photos) for path in world.photos.rglob("*.jpg"))
        # As the README writes them, from the clone (the modules are run from the repo root): a tiny offline model,
        # then an index of the photo folder beside it in HOME.
        self.model = world.clone / "models" / "tiny"
        world.run(["-m", "mme5", "tiny", "--out", "models/tiny"], cwd=world.clone)
        self.index = world.home / "photo-index"
        self.build = world.run(
            [
                "-m",
                "indexer",
                "build",
                "--dir",
                str(world.photos),
                "--index",
                str(self.index),
                "--model",
                "models/tiny",
                "--json",
            ],
            cwd=world.clone,
        )


@pytest.fixture(scope="module")
def library(user_world) -> Library:
    return Library(user_world)
