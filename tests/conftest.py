"""Shared fixtures: tiny random-weight models, built offline once per test session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch a hub
# ONNX exports of the tiny models go to a per-run cache, never the user's (subprocesses inherit it; the app
# subprocesses of tests/search_app and tests/userworld do not: they run in a fresh HOME as a user's machine does).
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ["MME5_CACHE_DIR"] = tempfile.mkdtemp(prefix="mme5-test-cache-")
atexit.register(shutil.rmtree, os.environ["MME5_CACHE_DIR"], True)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from mme5.cli import show_messages  # noqa: E402

show_messages()  # the library's log lines reach stderr as in every command, so tests see what users see


@pytest.fixture(scope="session")
def tiny_mllama_dir(tmp_path_factory):
    from mme5.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-mllama", backbone="mllama")


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    from mme5.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-siglip", backbone="siglip")


@pytest.fixture(scope="session")
def tiny_mllama(tiny_mllama_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_mllama_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_siglip(tiny_siglip_dir):
    from mme5 import load_embedder

    return load_embedder(str(tiny_siglip_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_siglip_torch(tiny_siglip_dir):
    """The tiny SigLIP on the torch runtime (``tiny_siglip`` uses ONNX Runtime on the CPU when installed)."""
    from mme5 import load_embedder

    return load_embedder(str(tiny_siglip_dir), device="cpu", runtime="torch")


@pytest.fixture(scope="session")
def replica_dirs(tmp_path_factory):
    """Tiny copies of the published checkpoints' folders (mme5/replica.py), named like the hub repos."""
    from mme5.replica import REPLICAS, build_replica, folder_name

    root = tmp_path_factory.mktemp("replicas")
    return {kind: build_replica(root / folder_name(kind), kind) for kind in REPLICAS}


LFS_SUFFIXES = (".safetensors", ".model", ".bin", ".jpg", ".sqlite", ".faiss")  # Git LFS on the Hub: blob by sha256


def _fill_hub_cache(cache, repo_id: str, folder, commit: str = "0" * 40, repo_type: str = "model"):
    """{models,datasets}--org--name/{blobs,snapshots/<commit>,refs/main} as from_pretrained / snapshot_download
    / `hf download` leave it (offline): snapshot files, in sub-folders too, are relative symlinks to blobs named
    by sha256 (LFS) or git blob id."""
    import hashlib
    from pathlib import Path

    repo = Path(cache) / (f"{repo_type}s--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name.endswith(LFS_SUFFIXES):
            blob = hashlib.sha256(data).hexdigest()
        else:
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        relative = path.relative_to(folder)
        (snapshot / relative).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / relative).symlink_to(Path(*[".."] * (len(relative.parts) + 1), "blobs", blob))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def fill_hub_cache():
    """Writes a folder into a Hugging Face cache folder: fill_hub_cache(cache, repo_id, folder[, commit, repo_type])."""
    return _fill_hub_cache


USER_SETTINGS = ("XDG_", "MME5_", "GRADIO_")  # what a new user's shell does not have set
HOMES = Path("/var/tmp")  # not the system temp directory: Gradio serves files from there, which hid a bug


@contextmanager
def new_home():
    """A new, empty HOME outside the system temp directory and the repo (removed afterwards).

    Apps started with a HOME (or XDG_CACHE_HOME) under the temp directory kept their previews where Gradio serves
    files anyway, so every app test passed while every browser search failed on a default install."""
    home = Path(tempfile.mkdtemp(prefix="mme5-home-", dir=HOMES))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def user_environment(home: Path, env: dict | None = None) -> dict:
    """This process's environment as a new user's: HOME = ``home``, no XDG_/MME5_/GRADIO_ setting nor TMPDIR (but
    those in ``env``), offline (tests never reach a hub)."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(USER_SETTINGS) and name != "TMPDIR"
    }
    return {**inherited, "HOME": str(home), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}


@pytest.fixture
def user_env():
    """The environment of a new user's shell for a CLI subprocess (``user_environment`` in a ``new_home``).
    MME5_CACHE_DIR stays, because the suite shares its ONNX exports of the tiny models (speed, not behaviour)."""
    with new_home() as home:
        yield user_environment(home, {"MME5_CACHE_DIR": os.environ["MME5_CACHE_DIR"]})


@pytest.fixture
def fresh_home(monkeypatch):
    """In-process code that finds the user's folders from HOME (the album store, the cache) gets a HOME of its own,
    outside the system temp folder and the repo, with no XDG_* overrides: it never writes into the real user's."""
    with new_home() as home:
        monkeypatch.setenv("HOME", str(home))
        for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name, raising=False)
        yield home


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (servers in tests listen there only)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(process, url: str, log: Path, timeout: float = 400) -> None:
    """Until ``url`` answers 200 (deadline poll); the app's log tail if it exits or the deadline passes."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"app did not answer on {url} within {timeout}s:\n{log.read_text()[-4000:]}")


# The logs of the app servers running now (tests/search_app/conftest.running_app registers them): a failed test
# shows their last lines, so a browser test that fails in CI says what the server did meanwhile.
SERVER_LOGS: list[Path] = []


PAGE_STATE_JS = """() => {
  const text = (selector) => (document.querySelector(selector) || {}).innerText || '';
  const results = document.querySelector('#results');
  const toasts = [...document.querySelectorAll('.toast-body')].map((toast) => toast.innerText.trim());
  return [
    `url: ${location.href}`,
    `status: ${text('#status').trim()}`,
    `results: class "${results ? results.className : '(none)'}", ${document.querySelectorAll('#results .thumbnail-item').length} items`,
    `viewer shown: ${!!document.querySelector('#viewer') && document.querySelector('#viewer').getClientRects().length > 0}`,
    `search button: "${text('#search').trim()}"${(document.querySelector('#search') || {}).disabled ? ', disabled' : ''}`,
    `query box: "${(document.querySelector('#query textarea, #query input') || {}).value ?? '(none)'}"`,
    `focus: ${document.activeElement ? document.activeElement.outerHTML.slice(0, 160) : '(none)'}`,
    `toasts: ${JSON.stringify(toasts)}`,
  ].join('\\n');
}"""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if page is not None and hasattr(page, "evaluate"):  # a browser test: what the page showed when it failed
        try:
            report.sections.append(("page when the test failed", page.evaluate(PAGE_STATE_JS)))
        except Exception as error:  # the page may be gone; the failure itself is what matters
            report.sections.append(("page when the test failed", f"not readable: {error}"))
    for log in SERVER_LOGS:
        try:
            tail = log.read_text(errors="replace").splitlines()[-60:]
        except OSError:
            continue
        report.sections.append((f"server log {log} (last {len(tail)} lines)", "\n".join(tail)))
