"""The page as a photo app, in Chromium at 1280×800 and on a 390×844 phone: results fill a phone's first screen,
every script reads in its own direction, captions are dates (month headings under date sort), a real viewer, one
accent colour, plurals, and advice that names its cause."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.text_photos import sign_photo

from .conftest import LIBRARY, make_photo, running_app
from .test_filters import make

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
WIDE = "big/wide.jpg"  # 1600×1200, taken 1 May 2022 09:30
SIGN, SIGN_TEXT = "signs/cafe.jpg", "CAFÉ CENTRAL"  # a photo with words in it
BERLIN = "trips/berlin.jpg"  # the one photo taken in Berlin
ACCENT = "rgb(29, 78, 216)"  # #1d4ed8, ui_layout.ACCENT

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture(scope="module")
def photo_app(tmp_path_factory, tiny_mllama_dir):
    """The real app over the test library plus one camera-sized photo: (url, photos folder)."""
    work = tmp_path_factory.mktemp("photo-app")
    photos = work / "photos"
    for seed, (relpath, taken) in enumerate(LIBRARY.items()):
        make_photo(photos / relpath, seed, taken)
    (photos / "big").mkdir()
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2022:05:01 09:30:00"  # DateTimeOriginal
    Image.new("RGB", (1600, 1200), (200, 100, 50)).save(photos / WIDE, "JPEG", exif=exif.tobytes())
    (photos / "signs").mkdir()
    sign_photo(SIGN_TEXT, "latin", seed=11).save(photos / SIGN, quality=90)  # OCR reads it at index time
    make(photos / BERLIN, 5, None, (52.52, 13.405))  # GPS in Berlin: the index names its place
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(photos),
        "--concurrency",
        "1",
        "--page-size",
        "5",
    ]
    with running_app(work, args, cwd=photos) as url:  # run from the photo folder, as a person does
        yield url, photos
    shutil.rmtree(photos, ignore_errors=True)


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser, photo_app):
    width, height = VIEWPORTS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.viewport_name = request.param
    page.app_url = photo_app[0]
    yield page
    context.close()


def visit(page, query: str = "", expect: str = "Showing", **params):
    """Open the page with a query (and filters) in its URL, as a shared link does; wait for its results."""
    from urllib.parse import urlencode

    page.goto(page.app_url + ("?" + urlencode({"q": query, **params}) if query else ""))
    page.wait_for_selector("#query input, #query textarea")
    if query:
        page.wait_for_function(
            "(t) => (document.querySelector('#status') || {innerText: ''}).innerText.includes(t)", arg=expect
        )


def search(page, text: str):
    page.locator("#query input, #query textarea").first.fill(text)
    page.click("#search")
    page.wait_for_function("(t) => document.querySelector('#status').innerText.includes(t)", arg=text)
    page.wait_for_selector("#results img")


def labels(page) -> list[str]:
    return page.eval_on_selector_all("#results .caption-label", "els => els.map(e => e.textContent)")


def test_after_a_search_results_fill_the_first_screen(page, artifacts):
    visit(page)
    search(page, "a photo of the sea")
    height = page.viewport_size["height"]
    boxes = page.eval_on_selector_all(
        "#results .thumbnail-item",
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom, r.width, r.height]; })",
    )
    inside = [box for box in boxes if box[0] >= 0 and box[1] <= height]
    assert inside, f"no result fully inside the first {height}-px screen: {boxes}"
    assert all(width >= 44 and tall >= 44 for _, _, width, tall in boxes)  # touch-sized
    page.screenshot(path=str(artifacts / f"search_app-{page.viewport_name}-first-screen.png"))
    if page.viewport_name == "phone":
        assert len(inside) >= 2  # two columns of results, not one
        page.mouse.wheel(0, 600)  # the search bar stays at the top while the results scroll
        page.wait_for_function("scrollY > 100")
        top = page.eval_on_selector("#query", "e => e.getBoundingClientRect().top")
        assert 0 <= top < 60
        page.click("#clear")  # a fresh page brings the whole form back
        page.wait_for_selector("#upload", state="visible")
    else:
        assert page.locator("#upload").is_visible() and page.locator("#intro").is_visible()  # desktop keeps all


def text_positions(page, selector: str) -> list[tuple[str, float]]:
    """(character, left edge on screen) for each character under ``selector``, in the text's logical order."""
    return [
        tuple(item)
        for item in page.evaluate(
            """(selector) => {
        const root = document.querySelector(selector), out = [];
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
          const node = walker.currentNode;
          for (let i = 0; i < node.length; i++) {
            const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
            out.push([node.data[i], range.getBoundingClientRect().left]);
          }
        }
        return out; }""",
            selector,
        )
    ]


def test_an_arabic_query_reads_in_order_in_the_status_line(page):
    query = "2023 قطة على الأريكة"  # right to left: the year first (rightmost), then "cat on the sofa"
    visit(page)
    # the page's script marks the box once Gradio has drawn it (Gradio draws it "ltr" first): wait for that
    page.wait_for_function(
        "() => { const box = document.querySelector('#query input, #query textarea');"
        " return box && box.getAttribute('dir') === 'auto'; }",
        timeout=10_000,
    )
    search(page, query)
    chars = text_positions(page, "#status p")
    text = "".join(char for char, _ in chars)
    start = text.index("“")
    end = text.index("”", start)
    x = [left for _, left in chars]
    inside = range(start + 1, end)
    assert all(x[start] < x[i] < x[end] for i in inside), "the quotes must enclose the query on screen"
    year = [start + 1 + n for n in range(4)]
    first_word = text.index("قطة")
    assert min(x[i] for i in year) > x[first_word], "an Arabic query starting with its year shows the year rightmost"
    assert page.eval_on_selector("#status bdi", "e => e.textContent") == query
    caption = page.locator("#results .caption-label").first
    assert caption.get_attribute("dir") == "auto"


def test_captions_are_dates_with_month_headings_under_date_sort(page, artifacts):
    visit(page, "a photo", sort="date")
    page.wait_for_selector("#results .month-heading")
    dated = [label for label in labels(page) if re.match(r"\d{1,2} [A-Z][a-z]{2} \d{4} · ", label)]
    assert dated and not any(re.search(r"\d\.\d{3}", label) for label in labels(page))  # no score by default
    assert not any("/" in label for label in labels(page))  # no folder paths
    headings = page.eval_on_selector_all("#results .month-heading", "els => els.map(e => e.textContent)")
    assert headings[0] == "May 2022" or re.fullmatch(r"[A-Z][a-z]+ \d{4}", headings[0]), headings
    months = [re.match(r"\d{1,2} ([A-Z][a-z]{2}) (\d{4})", label) for label in labels(page)]
    expected = list(dict.fromkeys(f"{m[1]} {m[2]}" for m in months if m))
    assert [heading[:3] + " " + heading.split()[-1] for heading in headings if heading != "Date unknown"] == expected
    page.screenshot(path=str(artifacts / f"search_app-{page.viewport_name}-month-headings.png"), full_page=True)
    if not page.locator("#show_scores").is_visible():
        page.click("#filters button, #filters .label-wrap")
    page.click("#show_scores input")  # the relevance display, on demand
    page.wait_for_function(
        "[...document.querySelectorAll('#results .caption-label')].every(e => /· -?\\d\\.\\d{3}$/.test(e.textContent))"
    )
    visit(page, "a photo")  # best match first: no headings
    page.wait_for_selector("#results img")
    assert page.locator("#results .month-heading").count() == 0


def test_the_viewer_shows_a_screen_rendition_and_escape_returns_to_the_result(page, photo_app, artifacts):
    visit(page, "a photo", folder="big")
    page.locator("#results .thumbnail-item").first.click()
    page.wait_for_function(
        "(() => { const i = document.querySelector('#viewer_image img');"
        " return i && i.complete && i.naturalWidth > 0; })()"
    )
    page.wait_for_function("document.activeElement && document.activeElement.id === 'viewer_close'")
    image = page.eval_on_selector(
        "#viewer_image img",
        """i => { const r = i.getBoundingClientRect();
        return {natural: i.naturalWidth, left: r.left, top: r.top, right: r.right, bottom: r.bottom,
                width: innerWidth, height: innerHeight}; }""",
    )
    assert image["natural"] >= 1024, image  # not the 384-px preview
    assert image["left"] >= 0 and image["top"] >= 0, image
    assert image["right"] <= image["width"] and image["bottom"] <= image["height"], image  # all of it in view
    page.wait_for_selector("#details time[data-local]")  # the page rewrites the date once the details are there
    details = page.inner_text("#details")
    assert details.startswith("wide.jpg") and "1600 × 1200 px" in details and "folder big" in details
    assert "Sunday, May 1, 2022" in details  # the browser's own date style (en-US here)
    page.screenshot(path=str(artifacts / f"search_app-{page.viewport_name}-viewer.png"))
    with page.expect_download() as download:
        page.click("#original")  # the original, as its own action
    assert Path(download.value.path()).read_bytes() == (photo_app[1] / WIDE).read_bytes()
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="detached")  # out of the page until a result is opened
    page.wait_for_function(
        "(() => { const a = document.activeElement; return a && a.matches('#results "
        ".thumbnail-item') && a === document.querySelectorAll('#results .thumbnail-item')[0]; })()"
    )


def test_the_viewer_shows_the_text_read_in_the_photo_to_select_and_copy(page):
    visit(page, "café central", folder="signs")
    page.locator("#results .thumbnail-item").first.click()
    page.wait_for_selector("#details #photo_text")
    quote = page.locator("#details #photo_text")
    assert quote.get_attribute("dir") == "auto" and "CENTRAL" in quote.inner_text().upper()
    assert "Text in the photo" in page.inner_text("#details")
    chosen = page.evaluate(
        """() => { const quote = document.querySelector('#details #photo_text');
        const range = document.createRange(); range.selectNodeContents(quote);
        const selection = getSelection(); selection.removeAllRanges(); selection.addRange(range);
        return {text: selection.toString(), style: getComputedStyle(quote).userSelect}; }"""
    )
    assert "CENTRAL" in chosen["text"].upper() and chosen["style"] != "none", chosen  # a person can copy it


@pytest.mark.parametrize(
    "query",
    ["фото в Берлине", "ベルリンで撮った写真", "صور ببرلين"],  # Russian with its case ending, Japanese, Arabic
)
def test_berlin_typed_in_three_scripts_becomes_the_berlin_place_chip(page, query):
    visit(page, query)
    page.wait_for_selector("#place_chip", state="visible")
    chip = page.inner_text("#place_chip")
    assert "Berlin" in chip, chip
    captions = page.eval_on_selector_all("#results .caption-label", "els => els.map(e => e.textContent)")
    assert len(captions) == 1 and captions[0].endswith("berlin.jpg"), captions  # only the photo taken there


def test_the_viewer_localises_dates(browser, photo_app):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="de-DE")
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.app_url = photo_app[0]
        visit(page, "a photo", folder="big")
        page.locator("#results .thumbnail-item").first.click()
        page.wait_for_function("(document.querySelector('#details') || {innerText: ''}).innerText.includes('Mai 2022')")
        assert "1. Mai 2022" in page.inner_text("#details")
    finally:
        context.close()


def test_one_accent_colour_plurals_and_advice_that_names_its_cause(page):
    visit(page, "x", expect="Showing 1 photo for", folder="2023/city")
    assert "1 photos" not in page.inner_text("#status")
    assert page.eval_on_selector("#search", "e => getComputedStyle(e).backgroundColor") == ACCENT
    page.click("#filters button, #filters .label-wrap")
    page.click("#collapse input")  # a checked box: the same accent, not Gradio's orange
    page.click("#collapse input")
    page.wait_for_function("document.querySelector('#collapse input').checked")
    checked = page.eval_on_selector("#collapse input", "e => getComputedStyle(e).backgroundColor")
    assert checked == ACCENT, checked
    assert page.eval_on_selector("body", "e => getComputedStyle(e).getPropertyValue('--color-accent')").strip() in (
        "#1d4ed8",
        ACCENT,
    )


def test_the_first_screen_shows_the_newest_photos_and_example_queries(page, artifacts):
    visit(page)
    page.wait_for_selector("#results.newest .thumbnail-item img")
    page.wait_for_selector("#examples button.example")
    chips = page.eval_on_selector_all("#examples button.example", "els => els.map(e => e.textContent)")
    assert chips[0] == "a dog on the beach" and len(chips) == 4  # the browser's language (en-US here)
    height = page.viewport_size["height"]
    tops = page.eval_on_selector_all(
        "#results .thumbnail-item", "els => els.map(e => e.getBoundingClientRect().bottom)"
    )
    assert any(bottom <= height for bottom in tops), tops  # photos on the first screen, before any search
    assert page.locator("#examples button.example").first.is_visible()
    assert "The newest are below" in page.inner_text("#status")
    assert page.locator("#intro").is_visible()  # the phone keeps its whole form until a search
    page.screenshot(path=str(artifacts / f"search_app-{page.viewport_name}-first-screen-empty.png"))
    page.locator("#examples button.example").nth(1).click()  # an example searches at once
    page.wait_for_function("document.querySelector('#status').innerText.includes('sunset over the sea')")
    assert page.locator("#query input, #query textarea").first.input_value() == "sunset over the sea"
    page.wait_for_selector("#results:not(.newest) .thumbnail-item")
    page.wait_for_selector("#examples", state="hidden")  # a search's own results take their place


def test_an_arabic_browser_gets_arabic_example_queries(browser, photo_app):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ar")
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.app_url = photo_app[0]
        visit(page)
        page.wait_for_selector("#examples button.example")
        chips = page.eval_on_selector_all(
            "#examples button.example",
            "els => els.map(e => [e.textContent, e.getAttribute('dir'), e.closest('[lang]').getAttribute('lang')])",
        )
        assert chips[0] == ["كلب على الشاطئ", "auto", "ar"], chips
        assert all(re.search("[\u0600-\u06ff]", text) and direction == "auto" for text, direction, _ in chips)
        page.locator("#examples button.example").first.click()
        page.wait_for_function("document.querySelector('#status').innerText.includes('كلب على الشاطئ')")
    finally:
        context.close()


def opened_name(page) -> str:
    """The file name at the top of the viewer's details, once they are drawn (not a progress line)."""
    page.wait_for_function(
        "/\\.(jpg|png)$/.test((document.querySelector('#details') || {innerText: ''}).innerText.split('\\n')[0].trim())"
    )
    return page.inner_text("#details").split("\n")[0].strip()


def wait_opened(page, name: str):
    page.wait_for_function(
        "(n) => (document.querySelector('#details') || {innerText: ''}).innerText.split('\\n')[0].trim() === n",
        arg=name,
    )


def swipe(page, dx: int):
    """A one-finger sideways swipe over the open photo (touch events, as a phone's browser sends them)."""
    page.evaluate(
        """(dx) => {
        const target = document.querySelector('#viewer_image img');
        const r = target.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
        const touch = (cx) => new Touch({identifier: 1, target, clientX: cx, clientY: y});
        target.dispatchEvent(new TouchEvent('touchstart', {touches: [touch(x)], changedTouches: [touch(x)],
                                                           bubbles: true, cancelable: true}));
        target.dispatchEvent(new TouchEvent('touchmove', {touches: [touch(x + dx)],
                                                          changedTouches: [touch(x + dx)], bubbles: true}));
        target.dispatchEvent(new TouchEvent('touchend', {touches: [], changedTouches: [touch(x + dx)],
                                                         bubbles: true}));
    }""",
        dx,
    )


def test_the_viewer_moves_between_results_with_arrow_keys_and_swipes(page):
    visit(page, "a photo")
    names = [re.search(r"[\w.-]+\.(?:jpg|png)", label).group(0) for label in labels(page)]
    assert len(names) == 5
    page.locator("#results .thumbnail-item").nth(1).click()
    wait_opened(page, names[1])
    page.keyboard.press("ArrowRight")  # → the next result
    wait_opened(page, names[2])
    page.keyboard.press("ArrowLeft")  # ← the previous one
    wait_opened(page, names[1])
    swipe(page, -150)  # a swipe to the left: the next result, as in a phone's photo app
    wait_opened(page, names[2])
    swipe(page, 150)
    wait_opened(page, names[1])
    swipe(page, -20)  # a small twitch moves nothing
    page.keyboard.press("ArrowLeft")
    wait_opened(page, names[0])
    assert page.locator("#viewer_previous").is_disabled()  # nothing before the first
    page.keyboard.press("ArrowLeft")
    page.locator("#viewer_next").click()  # the buttons do the same
    wait_opened(page, names[1])
    page.keyboard.press("Escape")  # back to the result that is open now, not the one first clicked
    page.wait_for_selector("#viewer", state="detached")
    page.wait_for_function("document.activeElement === document.querySelectorAll('#results .thumbnail-item')[1]")


def test_the_viewer_zooms_to_the_original_at_full_resolution_and_pans(page, photo_app):
    visit(page, "a photo", folder="big")
    page.locator("#results .thumbnail-item").first.click()
    page.wait_for_function(
        "(() => { const i = document.querySelector('#viewer_image img');"
        " return i && i.complete && i.naturalWidth > 0; })()"
    )
    if page.viewport_name == "desktop":
        page.dblclick("#viewer_image img")  # a double click zooms in
    else:
        page.click("#viewer_zoom")  # the "100 %" button
    page.wait_for_function(
        "(() => { const i = document.querySelector('#viewer_full img');"
        " return i && i.complete && i.naturalWidth > 0; })()"
    )
    image = page.eval_on_selector(
        "#viewer_full img", "i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, i.src]"
    )
    assert image[:3] == [1600, 1200, 1600], image  # the original's pixels, one to one
    assert page.request.get(image[3]).body() == (photo_app[1] / WIDE).read_bytes()  # the original file itself
    assert page.locator("#viewer_image").is_hidden()
    box = page.eval_on_selector(
        "#viewer_full",
        "e => [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight, e.getBoundingClientRect().right]",
    )
    assert box[0] > box[1] and box[2] > box[3] and box[4] <= page.viewport_size["width"], box
    page.eval_on_selector("#viewer_full", "e => e.scrollBy(300, 200)")  # panned by scrolling
    assert page.eval_on_selector("#viewer_full", "e => [e.scrollLeft, e.scrollTop]") == [300, 200]
    page.click("#viewer_fit")
    page.wait_for_selector("#viewer_full", state="hidden")
    page.wait_for_selector("#viewer_image img", state="visible")
