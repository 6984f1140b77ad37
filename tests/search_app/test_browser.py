"""The page in Debian's Chromium via Playwright: type a non-English query, search, see photos; upload; screenshot."""

from __future__ import annotations

import re

import pytest

from .conftest import settled

pytestmark = [pytest.mark.server, pytest.mark.browser]  # drives Chromium against the app in a subprocess


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


@pytest.fixture(scope="module")
def page(served_app):
    from playwright.sync_api import sync_playwright

    url, _ = served_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("#query input, #query textarea")
        yield page
        browser.close()


def query_box(page):
    return page.locator("#query input, #query textarea").first


def captions(page) -> list[str]:
    """The file names in the result captions ("14 Jul 2023 · red.jpg": the date, then the name), in order."""
    labels = page.eval_on_selector_all("#results .caption-label", "els => els.map(e => e.textContent)")
    return [re.search(r"[\w.-]+\.(?:jpg|png)", label).group(0) for label in labels]


def status(page) -> str:
    return page.inner_text("#status")


def test_page_shows_index_stats_and_multilingual_placeholder(page):
    footer = page.inner_text("#footer")
    assert "12 photos indexed" in footer and "tiny-mllama" in footer
    placeholder = query_box(page).get_attribute("placeholder")
    assert all(word in placeholder for word in ["кошка", "沙发上的猫", "قطة"])


def test_empty_search_gets_a_human_message(page):
    query_box(page).fill("")
    page.click("#search")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Type a description')")
    assert page.locator("#results:not(.newest) img").count() == 0  # no results (the first screen's newest may stay)


def test_non_english_query_fills_the_gallery(page, artifacts):
    query_box(page).fill("кошка на диване")
    page.click("#search")
    page.wait_for_function("document.querySelector('#status').innerText.includes('кошка на диване')")
    page.wait_for_selector("#results img")
    assert page.locator("#results img").count() == 5 and "Showing 5 photos" in status(page)  # --page-size 5
    assert re.search(r"\d{1,2} [A-Z][a-z]{2} 20\d\d · [\w-]+\.jpg", page.inner_text("#results"))  # date · name
    assert not re.search(r"\d\.\d{3}", page.inner_text("#results"))  # the score only when asked for
    page.screenshot(path=str(artifacts / "search_app-text-query.png"), full_page=True)


def test_load_more_appends_pages_until_the_end(page):
    first = captions(page)
    page.click("#load_more")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Showing 10 photos')")
    page.click("#load_more")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Showing 11 photos')")
    every = captions(page)
    assert every[:5] == first and len(every) == len(set(every)) == 11  # 12 files, the identical copy folded in
    page.wait_for_selector("#load_more", state="hidden")


def test_clicking_a_result_offers_more_like_this(page):
    page.locator("#results img").nth(2).click()
    page.wait_for_selector("#more_like_this", state="visible")
    details = page.inner_text("#details")
    assert "score" in details and "px" in details
    page.click("#more_like_this")
    page.wait_for_function("document.querySelector('#status').innerText.includes('photos like')")
    page.wait_for_selector("#results img")


def test_filters_narrow_the_results(page):
    page.click("text=Filters and sorting")
    page.locator("#folder input, #folder textarea").first.fill("2023")
    page.locator("#date_from input, #date_from textarea").first.fill("not a date")
    query_box(page).fill("la plage")
    page.click("#search")
    page.wait_for_function("document.querySelector('#status').innerText.includes('is not a date')")
    page.locator("#date_from input, #date_from textarea").first.fill("2023-07-15")
    page.click("#search")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Showing 2 photos')")
    assert page.locator("#results img").count() == 2
    page.locator("#folder input, #folder textarea").first.fill("")
    page.locator("#date_from input, #date_from textarea").first.fill("")


def test_upload_searches_by_image_and_with_text_composes(page, library, artifacts):
    # Start from a clean page: the filter boxes emptied by the test before only re-rank when they lose focus,
    # and that queued re-rank of the old query could land after this search.
    page.click("#clear")  # the form empties and the first screen's newest photos come back
    page.wait_for_selector("#results.newest .thumbnail-item img")
    page.wait_for_function("document.querySelector('#status').innerText.includes('The newest are below')")
    settled(page)  # Clear empties the upload box too: choose the photo once its reply has landed
    page.set_input_files("#upload input[type=file]", str(library / "2024/green.jpg"))
    page.wait_for_selector("#upload img")
    page.click("#search")
    page.wait_for_function("document.querySelector('#status').innerText.includes('for your photo.')")
    page.wait_for_selector("#results img")
    assert captions(page)[0] == "green.jpg"  # the photo itself ranks first
    query_box(page).fill("mais la nuit")
    page.click("#search")
    page.wait_for_function("document.querySelector('#status').innerText.includes('your photo + “mais la nuit”')")
    page.screenshot(path=str(artifacts / "search_app-composed-query.png"), full_page=True)
    assert (artifacts / "search_app-composed-query.png").stat().st_size > 10_000
