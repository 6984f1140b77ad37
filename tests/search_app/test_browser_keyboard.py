"""The page in Chromium by keyboard only (Tab, Enter, Escape), and its albums and similar-photo groups."""

from __future__ import annotations

import re
import zipfile

import pytest

from .test_browser import CHROMIUM, FLAGS
from .test_browser_features import captions, status, wait_status

pytestmark = [pytest.mark.server, pytest.mark.browser]  # drives Chromium against the app in a subprocess

QUERY = "#query textarea, #query input"
THUMBNAIL = "#results button.thumbnail-item"


@pytest.fixture(scope="module")
def page(served_app):
    from playwright.sync_api import sync_playwright

    url, _ = served_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector(QUERY)
        page.wait_for_function(
            "(() => { const s = document.querySelector('#status'); "
            "return s && s.getAttribute('aria-live') === 'polite'; })()"
        )
        yield page
        browser.close()


def focused(page, selector: str) -> bool:
    return page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector)


def tab_to(page, selector: str, limit: int = 60) -> int:
    """Press Tab until the focus is on ``selector``; the number of presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if focused(page, selector):
            return presses
    where = page.evaluate("document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : 'nothing'")
    raise AssertionError(f"{selector} not reached with {limit} presses of Tab; the focus is on {where}")


def test_search_open_a_result_and_more_like_this_by_keyboard_only(page, artifacts):
    assert tab_to(page, QUERY) <= 5  # the query box is among the first stops
    page.keyboard.type("a photo of a street")
    page.keyboard.press("Enter")
    wait_status(page, "Showing 5 photos")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'status'")  # results announced
    tab_to(page, THUMBNAIL)
    page.keyboard.press("Enter")  # opens the photo's details (and Gradio's large preview)
    page.wait_for_function(
        "(document.querySelector('#details') || {innerText: ''}).innerText.includes('score')"
    )  # the viewer
    page.wait_for_selector("#more_like_this", state="visible")
    page.screenshot(path=str(artifacts / "search_app-keyboard-details.png"), full_page=True)
    page.keyboard.press("Escape")  # closes the viewer; the focus comes back to the results, not to the page top
    page.wait_for_function(
        "(() => { const a = document.activeElement; "
        "return a && a !== document.body && !!a.closest('#results, #query'); })()"
    )
    page.keyboard.press("Enter")  # the same result again: the focus moves into the viewer
    page.wait_for_function("document.activeElement && document.activeElement.id === 'viewer_close'")
    tab_to(page, "#more_like_this")
    page.keyboard.press("Enter")
    wait_status(page, "photos like")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'status'")
    assert page.locator("#results img").count() > 0
    page.screenshot(path=str(artifacts / "search_app-keyboard-more-like-this.png"), full_page=True)


def open_panel(page, elem_id: str, inner: str):
    if not page.locator(inner).is_visible():
        page.click(f"#{elem_id} > button, #{elem_id} .label-wrap")
        page.wait_for_selector(inner, state="visible")


def test_an_album_is_saved_opened_pinned_and_downloaded_as_a_zip(page, library, artifacts):
    page.locator(QUERY).first.fill("a red photo")
    page.click("#search")
    wait_status(page, "Showing")
    open_panel(page, "albums", "#album_name")
    page.locator("#album_name input, #album_name textarea").first.fill("Red things")
    page.click("#save_album")
    wait_status(page, "Saved the album “Red things”")
    last = captions(page)[-1]
    page.locator("#results .thumbnail-item").nth(len(captions(page)) - 1).click()
    page.wait_for_function(
        "(t) => (document.querySelector('#details') || {innerText: ''}).innerText.includes(t)", arg=last
    )
    page.keyboard.press("Escape")
    page.click("#pin")
    wait_status(page, "Pinned")
    assert "album “Red things” (1 pinned, 0 removed)" in status(page)
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('#results .caption-label')]"
        ".some(e => e.textContent.startsWith('📌 ') && e.textContent.endsWith(t))",
        arg=last,
    )
    page.click("#make_zip")
    page.wait_for_selector("#album_zip", state="visible")
    with page.expect_download() as download:
        page.click("#album_zip")
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
        original = next(library.rglob(last))
        assert last in names and archive.read(last) == original.read_bytes()
    page.screenshot(path=str(artifacts / "search_app-album.png"), full_page=True)


def test_similar_groups_list_near_identical_photos_with_the_best_marked(page, artifacts):
    open_panel(page, "similar_panel", "#find_groups")
    page.wait_for_function("document.querySelector('#threshold input').value === '0.95'")  # the model's default
    page.click("#find_groups")
    wait_status(page, "of near-identical photos at similarity ≥ 0.95")
    text = page.inner_text("#results")
    assert len(re.findall("★ best", text)) == len(re.findall(r"group \d+ · ★", text)) >= 1
    assert "red-copy.jpg" in text and "red.jpg" in text  # identical copies are one group
    page.screenshot(path=str(artifacts / "search_app-similar-groups.png"), full_page=True)


def test_a_place_typed_in_the_query_becomes_a_removable_chip(
    page, served_app, tiny_mllama, tmp_path_factory, artifacts
):
    """Last in this module: it adds a photo taken in Lisbon to the served index (the app picks the build up)."""
    from indexer import build_index

    from .test_filters import make

    _, index = served_app
    root = tmp_path_factory.mktemp("gps") / "trips"
    make(root / "lisbon.jpg", 7, None, (38.7167, -9.1333))
    build_index([root], index, tiny_mllama, show_progress=False)
    for n in range(20):  # the app looks for a finished build at most every 2 s, on a query
        page.locator(QUERY).first.fill(f"praia {n} em Lisboa")  # a new text each time: its own status line
        page.click("#search")
        wait_status(page, f"“praia {n} em Lisboa”")
        if page.locator("#place_chip").is_visible():
            break
    assert "📍 Lisbon (from “em Lisboa”)" in page.inner_text("#place_chip")
    assert captions(page) == ["lisbon.jpg"]
    page.screenshot(path=str(artifacts / "search_app-place-chip.png"), full_page=True)
    page.click("#place_chip")
    page.wait_for_selector("#place_chip", state="hidden")
    page.wait_for_function("document.querySelectorAll('#results img').length === 5")  # the whole library again
