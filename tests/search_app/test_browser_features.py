"""The page as a new user meets it, in Chromium at 1280×900 and on a 390×844 phone: layout, uploads, Clear,
filters that apply at once (also to Load more), More like this, dates typed in the query, strong matches,
the URL, focus, the original file, and an axe-core scan of the app's own markup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import axe_serious, settled

pytestmark = [pytest.mark.server, pytest.mark.browser]  # drives Chromium against the app in a subprocess

VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}
# Every state of the page the axe scan covers, at both sizes: Gradio's markup included (the page names Gradio's
# unnamed controls: search_app/ui_layout.NAMES_JS), nothing excluded.
AXE_SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
AXE_STATES = (
    "first screen",
    "after a search",
    "photo open",
    "photo at 100 %",
    "filters open",
    "albums and groups open",
    "cleared",
)


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser, served_app):
    url, _ = served_app
    width, height = VIEWPORTS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#query input, #query textarea")
    page.wait_for_function(
        "(() => { const s = document.querySelector('#status'); "
        "return s && s.getAttribute('aria-live') === 'polite'; })()"
    )
    page.viewport_name = request.param
    yield page
    context.close()


def box(page, elem_id):
    return page.locator(f"#{elem_id} input, #{elem_id} textarea").first


def status(page) -> str:
    return page.inner_text("#status")


def wait_status(page, text: str):
    page.wait_for_function(
        "(t) => { const s = document.querySelector('#status'); return s && s.innerText.includes(t); }", arg=text
    )


def captions(page) -> list[str]:
    """The file names in the result captions ("14 Jul 2023 · red.jpg": the date, then the name), in order."""
    labels = page.eval_on_selector_all("#results .caption-label", "els => els.map(e => e.textContent)")
    return [re.search(r"[\w.-]+\.(?:jpg|png)", label).group(0) for label in labels]


def search(page, text: str, expect: str = "Showing"):
    """Search and wait for this search's own reply (not the previous "Showing …"), with Search usable again."""
    box(page, "query").fill(text)
    page.click("#search")
    wait_status(page, expect)
    page.wait_for_function(
        "([text, mine]) => { const s = document.querySelector('#status').innerText;"
        " const b = document.querySelector('#search');"
        " return (!mine || s.includes(text)) && !b.disabled && b.innerText.trim() === 'Search'; }",
        arg=[text, expect == "Showing"],
    )
    settled(page)


def open_filters(page):
    if not page.locator("#folder").is_visible():
        page.click("#filters button, #filters .label-wrap")
        page.wait_for_selector("#folder", state="visible")


def test_no_result_is_hidden_sideways_and_load_more_scrolls_to_the_new_photos(page, artifacts):
    search(page, "a photo of a street")
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    rights = page.eval_on_selector_all(
        "#results .thumbnail-item", "els => els.map(e => e.getBoundingClientRect().right)"
    )
    assert len(rights) == 5 and max(rights) <= width  # --page-size 5, every one on screen horizontally
    page.click("#load_more")
    wait_status(page, "Showing 10 photos")
    page.wait_for_function("""() => { const item = document.querySelectorAll('#results .thumbnail-item')[5];
        const r = item && item.getBoundingClientRect(); return r && r.top >= 0 && r.bottom <= innerHeight; }""")
    assert page.evaluate(
        "document.querySelector('#results .grid-wrap').scrollHeight <= "
        "document.querySelector('#results .grid-wrap').clientHeight + 2"
    )  # no inner scroll box
    page.screenshot(path=str(artifacts / f"search_app-{page.viewport_name}-load-more.png"), full_page=True)


def test_a_bad_upload_is_refused_on_arrival_and_the_next_search_works(page, tmp_path, library):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is a text file, not a photo")
    page.set_input_files("#upload input[type=file]", str(fake))
    wait_status(page, "notes.jpg is not an image")
    assert "removed" in status(page) and page.locator("#upload img").count() == 0
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((library / "2024/green.jpg").read_bytes()[:400])
    page.set_input_files("#upload input[type=file]", str(truncated))
    wait_status(page, "cut.jpg")
    assert re.search(r"damaged or truncated|not an image", status(page)) and "/tmp" not in status(page)
    search(page, "ein Hund")  # the text search still works
    assert page.locator("#results img").count() == 5


def test_clear_resets_query_filters_results_and_paging(page):
    open_filters(page)
    box(page, "folder").fill("2023")
    search(page, "sea")
    assert "1 on: folder" in page.inner_text("#filters")
    page.click("#clear")  # back to the first screen: the newest photos replace the results
    page.wait_for_selector("#results.newest .thumbnail-item img")
    wait_status(page, "The newest are below")
    assert box(page, "query").input_value() == "" and box(page, "folder").input_value() == ""
    assert page.locator("#load_more").is_hidden() and "on:" not in page.inner_text("#filters")
    assert "?" not in page.url


def test_a_changed_filter_applies_at_once_and_to_load_more(page):
    search(page, "x")
    assert page.locator("#load_more").is_visible()
    open_filters(page)
    box(page, "folder").fill("2024")  # no Enter, no Search: Load more must still follow it
    page.click("#load_more")
    page.wait_for_function(r"""() => { const names = [...document.querySelectorAll('#results .thumbnail-item')]
        .map(e => e.innerText); return names.length === 3
        && names.every(n => /(green|yellow)\.jpg|purple\.png/.test(n)); }""")  # the photos in 2024/
    assert "1 on: folder" in page.inner_text("#filters")
    box(page, "folder").fill("MISC")  # any case: the folder is "misc"
    box(page, "folder").press("Enter")
    wait_status(page, "Showing 4 photos")
    assert sorted(captions(page)) == ["checker.jpg", "gray.jpg", "noise.jpg", "stripes.jpg"]  # misc/
    box(page, "folder").fill("holidays")
    box(page, "folder").press("Enter")
    wait_status(page, "No folder called “holidays”")
    assert "2023/beach" in status(page)  # the indexed folders are offered


def test_more_like_this_clears_the_text_shows_the_source_and_leaves_it_out(page):
    search(page, "a red photo")
    page.locator("#results .thumbnail-item").nth(1).click()
    page.wait_for_selector("#more_like_this", state="visible")
    page.wait_for_function("(document.querySelector('#details') || {innerText: ''}).innerText.includes('score')")
    chosen = page.inner_text("#details").split("\n")[0].strip("* ")  # the file's name
    page.click("#more_like_this")
    wait_status(page, "photos like")
    page.wait_for_selector("#source img")
    assert box(page, "query").input_value() == ""
    relpath = status(page).split("photos like ")[1].split(".")[0]
    assert Path(relpath).name == Path(chosen).stem
    assert chosen not in captions(page)
    page.wait_for_function("document.activeElement && document.activeElement.id === 'status'")


def test_a_date_in_the_query_becomes_a_removable_chip(page, artifacts):
    search(page, "Strand im Juli 2023")
    page.wait_for_selector("#date_chip", state="visible")
    assert "2023-07-01" in page.inner_text("#date_chip")
    assert sorted(captions(page)) == ["orange.jpg", "red.jpg"]
    page.screenshot(path=str(artifacts / f"search_app-{page.viewport_name}-date-chip.png"), full_page=True)
    page.click("#date_chip")
    page.wait_for_selector("#date_chip", state="hidden")
    page.wait_for_function("document.querySelectorAll('#results img').length === 5")


def test_strong_matches_only_says_how_many_are_hidden_and_shows_all(page):
    open_filters(page)
    search(page, "a blue photo")
    page.click("#strong_only input")
    wait_status(page, "weaker")
    # some strong matches: how many are hidden; none: the advice names the switch as the cause, not the filters
    assert re.search(r"\d+ strong match(es)? · \d+ weaker hidden", status(page)) or re.search(
        r"No strong matches for .*“Strong matches only” hides \d+ weaker match(es)?\. Press Show all", status(page)
    )
    page.click("#show_all")
    page.wait_for_function("!document.querySelector('#status').innerText.includes('weaker')")
    assert not page.locator("#strong_only input").is_checked()


def test_the_url_keeps_query_and_filters_across_reload(page):
    open_filters(page)
    box(page, "folder").fill("2023")
    search(page, "кошка")
    page.wait_for_function("location.search.includes('folder=2023')")
    assert "q=" in page.url
    page.reload()
    page.wait_for_function(
        "(() => { const s = document.querySelector('#status'); return s && s.innerText.includes('кошка'); })()"
    )
    open_filters(page)  # a fresh page starts with the filter panel closed (its title says which are on)
    assert box(page, "query").input_value() == "кошка" and box(page, "folder").input_value() == "2023"
    assert set(captions(page)) <= {"red.jpg", "orange.jpg", "blue.jpg"}  # the photos in 2023/


def test_the_original_is_downloaded_through_the_guard_with_its_facts(page, library):
    search(page, "a green photo", expect="Showing")
    page.locator("#results .thumbnail-item").first.click()
    page.wait_for_selector("#original", state="visible")
    name = page.inner_text("#details").split("\n")[0].strip("* ")
    folder = re.search(r"folder (\S+)", page.inner_text("#details")).group(1)  # relative to the indexed folder
    path = library / folder / name
    assert re.search(r"\d+ × \d+ px", page.inner_text("#details"))
    with page.expect_download() as download:
        page.click("#original")
    assert Path(download.value.path()).read_bytes() == path.read_bytes()


def test_the_search_button_waits_and_old_results_stay(page):
    search(page, "sunset")
    before = captions(page)
    box(page, "query").fill("sunrise")
    page.click("#search")
    page.wait_for_function(
        "document.querySelector('#search').disabled || document.querySelector('#status').innerText.includes('sunrise')"
    )
    assert page.locator("#results img").count() >= len(before)  # old results kept until the new ones arrive
    wait_status(page, "sunrise")
    assert page.locator("#search").is_enabled()


def test_a_search_sent_while_the_one_before_is_pending_runs_after_it(page):
    """A second query sent while the first is still pending is not dropped: Gradio skips a repeat of an event still
    pending unless it is told to run the latest after it, which left the second query unsearched (and a click on
    Search between the first's results and its end message left the button stuck at "Searching…": CI met that).
    Holding the message stream widens the window; with Gradio's default the test failed in a full browser run, not
    yet in every run alone."""
    import time

    search(page, "sunset")
    held, open_door = [], []

    def hold(route):
        route.continue_() if open_door else held.append(route)

    page.route("**/queue/data*", hold)  # the queue's messages to the page wait until let through
    box(page, "query").fill("a green photo")
    box(page, "query").press("Enter")  # Enter in the box: the Search button is disabled while a search runs
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # a deadline poll: the route handler runs while Playwright waits
    assert held, "the search opened no message stream"
    box(page, "query").fill("sunrise")
    box(page, "query").press("Enter")  # while the first is still pending
    open_door.append(True)
    for route in held:
        route.continue_()
    wait_status(page, "sunrise")
    page.wait_for_function("!document.querySelector('#search').disabled")
    assert "?q=sunrise" in page.url


def reach(page, state: str):
    """Bring the page (freshly loaded) to ``state`` (one of AXE_STATES)."""
    if state == "first screen":
        page.wait_for_selector("#results.newest .thumbnail-item img")
        page.wait_for_selector("#examples button.example")
        return
    search(page, "a photo")
    if state in ("photo open", "photo at 100 %"):
        page.locator("#results .thumbnail-item").first.click()
        page.wait_for_function(
            "(() => { const i = document.querySelector('#viewer_image img');"
            " return i && i.complete && i.naturalWidth > 0; })()"
        )
        if state == "photo at 100 %":
            page.click("#viewer_zoom")
            page.wait_for_function(
                "(() => { const i = document.querySelector('#viewer_full img');"
                " return i && i.complete && i.naturalWidth > 0; })()"
            )
    elif state == "filters open":
        open_filters(page)
    elif state == "albums and groups open":
        for panel, inner in (("albums", "#save_album"), ("similar_panel", "#find_groups")):
            if not page.locator(inner).is_visible():
                page.click(f"#{panel} > button, #{panel} .label-wrap")
                page.wait_for_selector(inner, state="visible")
        page.click("#find_groups")
        wait_status(page, "near-identical photos")
    elif state == "cleared":
        page.click("#clear")  # back to the first screen: the form empty, the newest photos
        page.wait_for_selector("#results.newest .thumbnail-item img")
        wait_status(page, "The newest are below")
    settled(page)
    # and Gradio's progress overlay has faded out (a scan mid-fade measures text behind a half-opaque layer)
    page.wait_for_function("document.getAnimations().every(a => a.playState !== 'running')")


@pytest.mark.parametrize("state", AXE_STATES)
@pytest.mark.parametrize("size", list(AXE_SIZES))
def test_axe_finds_no_serious_or_critical_problem_in_any_state(browser, served_app, artifacts, size, state):
    width, height = AXE_SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(served_app[0])
        page.wait_for_selector("#query input, #query textarea")
        reach(page, state)
        # from the top: scrolled, the phone's sticky search bar lies over the text below it, and axe measures that
        # text against the bar's blue button
        page.evaluate("scrollTo(0, 0)")
        serious = axe_serious(page)
        (artifacts / f"search_app-{size}-axe-{state.replace(' ', '-').replace('%', 'pct')}.txt").write_text(
            "\n".join(
                f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}" for v in serious
            )
        )
        assert not serious, [
            (v["id"], v["help"], [(n["html"][:120], [a["message"] for a in n["any"]]) for n in v["nodes"]][:3])
            for v in serious
        ]
        if state in ("first screen", "after a search"):  # a thumbnail is named by its caption, not "Thumbnail 1"
            first = page.locator("#results .thumbnail-item").first
            caption = first.locator(".caption-label").inner_text().strip()
            assert first.get_attribute("aria-label").startswith(caption) and caption
    finally:
        context.close()
