"""The README's Quick start, run verbatim from a fresh clone in the user's world (offline: ``--tiny``), searched
in Chromium at desktop and phone size; and what the app serves from the user's cache (nothing but what it shows)."""

from __future__ import annotations

import re
import shlex
import shutil

import httpx
import pytest

from .conftest import REPO, SIZES, open_page, wait_status

pytestmark = pytest.mark.server


def quick_start_command() -> list[str]:
    """The command of the README's Quick start that starts the app (after the venv and the install)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    command = shlex.split(block.strip().split("&&")[-1])
    assert command[:2] == [".venv/bin/python", "app.py"], command
    return command


@pytest.fixture(scope="module")
def quick_start(user_world):
    """The Quick start's app in the fresh clone, with `--tiny` (offline; the default model is downloaded)."""
    program, *args = quick_start_command()
    if "--tiny" not in args:
        args.append("--tiny")
    with user_world.app(args, cwd=user_world.clone, program=program, log_name="quick-start.log") as url:
        yield url


@pytest.mark.browser
@pytest.mark.parametrize("size", list(SIZES))
def test_a_text_search_shows_results(quick_start, browser, size, artifacts):
    page = open_page(browser, quick_start, size)
    try:
        page.locator("#query input, #query textarea").first.fill("a dog on the beach")
        page.click("#search")
        wait_status(page, "Showing")
        page.wait_for_selector("#results img")
        sources = [image.get_attribute("src") for image in page.locator("#results img").all()]
        assert sources
        for source in sources:  # every preview really arrives (not a broken image)
            answer = page.request.get(source)
            assert answer.status == 200 and answer.body()[:2] == b"\xff\xd8", source
        assert page.inner_text("#search") == "Search" and page.locator("#search").is_enabled()  # not "Searching…"
        page.screenshot(path=str(artifacts / f"userworld-quick-start-{size}.png"), full_page=True)
    finally:
        page.context.close()


def test_nothing_else_in_the_cache_is_served(quick_start, user_world):
    """Only files the app handed out are served: not the model, the index, the previews folder itself (not even a
    preview left there of a photo outside the indexed roots), nor the photos themselves."""
    from search_app.thumbnails import ThumbnailCache

    secret = user_world.photos / "secret.jpg"
    indexed = sorted((user_world.clone / "assets" / "photos").rglob("*.jpg"))[0]
    shutil.copyfile(indexed, secret)  # a photo of the user's that this index does not hold
    leftover = ThumbnailCache(user_world.cache / "previews").get(secret, "5" * 32)  # as another index's app left it
    refused = [
        user_world.cache / "tiny-mllama" / "config.json",
        user_world.cache / "index-tiny" / "catalog.sqlite",
        leftover,
        secret,
        indexed,
        user_world.cache / "gradio" / ".." / "previews" / leftover.name,
        user_world.home / ".bashrc",
    ]
    (user_world.home / ".bashrc").write_text("export SECRET=1\n")
    for path in refused:
        answer = httpx.get(f"{quick_start}gradio_api/file={path}", timeout=30)
        assert answer.status_code == 403, (path, answer.status_code)
