"""The map of the results in Chromium at 1280×800 and on a 390×844 phone: a marker per result with a GPS position,
the plain fallback when tiles cannot load (the tests have no network), a drawn area as a removable filter kept in the
URL, a typed radius drawn as its circle, the map's file route refusing other paths, and an axe scan of the map."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from .conftest import running_app
from .conftest import settled
from .conftest import axe_serious
from .test_browser_features import captions, search
from .test_query_near import PHOTOS, build_library

pytestmark = [pytest.mark.server, pytest.mark.browser]  # drives Chromium against the app in a subprocess

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
WITH_GPS = sorted(name for name, position in PHOTOS.items() if position is not None)


@pytest.fixture(scope="module")
def map_app(tmp_path_factory, tiny_mllama_dir):
    """The app over photos with known positions (Lisbon, Sintra, Porto, Tokyo, Fiji) and one without."""
    work = tmp_path_factory.mktemp("map-app")
    library = tmp_path_factory.mktemp("map-library")
    build_library(library)
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(library),
        "--concurrency",
        "1",
    ]
    with running_app(work, args, cwd=library) as url:  # run from the photo folder, as a person does
        yield url


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser, map_app):
    width, height = VIEWPORTS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(map_app)
    page.wait_for_selector("#query input, #query textarea")
    page.wait_for_function("() => window.photoSearchMap && document.querySelector('#map_toggle')")
    page.viewport_name = request.param
    yield page
    context.close()


def open_map(page, markers: int):
    if page.get_attribute("#map_toggle", "aria-expanded") != "true":
        page.click("#map_toggle")
    page.wait_for_function("(n) => document.querySelectorAll('#map .leaflet-marker-icon').length === n", arg=markers)


def marker_names(page) -> list[str]:
    """The file names the markers are called by (a marker is named by its photo's caption: "Lisbon · lisbon.jpg")."""
    labels = page.eval_on_selector_all("#map .leaflet-marker-icon", "els => els.map(e => e.alt)")
    return sorted(label.rsplit(" · ", 1)[-1] for label in labels)


def marker(name: str) -> str:
    """The marker of the photo called ``name`` (its caption ends with the file name)."""
    return f'#map .leaflet-marker-icon[alt="{name}"], #map .leaflet-marker-icon[alt$=" · {name}"]'


def drag_around(page, name: str):
    """Draw an area 60 px wide around a marker's point (its icon's bottom middle)."""
    page.click("#map_draw")
    page.evaluate("() => document.querySelector('#map').scrollIntoView({block: 'center'})")
    icon = page.locator(marker(name)).bounding_box()
    x, y = icon["x"] + icon["width"] / 2, icon["y"] + icon["height"]
    page.mouse.move(x - 30, y - 30)
    page.mouse.down()
    page.mouse.move(x, y, steps=3)
    page.mouse.move(x + 30, y + 30, steps=3)
    page.mouse.up()


def wait_results(page, names: list[str]):
    page.wait_for_function("(n) => document.querySelectorAll('#results .thumbnail-item').length === n", arg=len(names))
    settled(page)
    assert sorted(captions(page)) == sorted(names)


def test_a_marker_per_result_with_gps_the_offline_note_and_a_click_opens_the_photo(page, artifacts):
    search(page, "a photo")
    assert len(captions(page)) == len(PHOTOS)
    open_map(page, len(WITH_GPS))
    assert marker_names(page) == WITH_GPS  # nogps.jpg has none
    page.wait_for_selector("#map_note", state="visible")  # no network here: the tiles cannot load
    assert "could not load; positions are still shown" in page.inner_text("#map_note")
    assert "no-tiles" in page.get_attribute("#map", "class")
    assert "7 of 8 results" in page.inner_text("#map_count")
    page.screenshot(path=str(artifacts / f"search_app-{page.viewport_name}-map.png"))
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    page.click(marker("tokyo.jpg"))
    page.wait_for_selector("#viewer_close", state="visible")
    # the details arrive in the same reply as the viewer but are drawn after it: wait for them
    page.wait_for_function("() => (document.querySelector('#details') || {}).innerText?.includes('tokyo.jpg')")
    page.keyboard.press("Escape")
    page.focus(marker("fiji.jpg"))  # from the keyboard (Tab reaches each marker), before the viewer has closed
    page.wait_for_selector("#viewer", state="hidden")
    # Closing puts the focus back on the photo that was open, but not once the person has moved it: it stays on the
    # marker. Absence needs a wait: 300 ms in the page is six turns of the page's focus step (every 50 ms).
    focused = page.evaluate("() => new Promise((done) => setTimeout(() => done(document.activeElement.alt), 300))")
    assert (focused or "").endswith("fiji.jpg"), focused
    page.keyboard.press("Enter")
    page.wait_for_function("() => (document.querySelector('#details') || {}).innerText?.includes('fiji.jpg')")


def test_the_first_screen_and_clear_put_the_newest_photos_on_the_map(page):
    """Before any search the newest photos are the results, so the map shows them too; after a search, Clear brings
    them back to the gallery and the map. Captions name the place a photo was taken."""
    page.wait_for_selector("#results.newest .thumbnail-item img")
    open_map(page, len(WITH_GPS))
    assert marker_names(page) == WITH_GPS
    labels = page_captions(page)
    assert "Lisbon · lisbon.jpg" in labels and "Tokyo · tokyo.jpg" in labels and "nogps.jpg" in labels  # the city
    search(page, "a photo")
    page.click("#clear")
    page.wait_for_selector("#results.newest .thumbnail-item img")
    open_map(page, len(WITH_GPS))
    assert marker_names(page) == WITH_GPS


def page_captions(page) -> list[str]:
    return page.eval_on_selector_all("#results .caption-label", "els => els.map(e => e.textContent)")


def test_without_tiles_the_map_is_plain_and_its_markers_work(page):
    # what --map-tiles none writes into the page (map_view.panel_html, tested in test_map_view.py), set before the
    # map opens: no tile is asked for, the background is plain and the markers are there
    page.evaluate("""() => { const box = document.querySelector('#map_box');
        const config = JSON.parse(box.dataset.map); config.tiles = 'none'; box.dataset.map = JSON.stringify(config); }""")
    asked = []
    page.on("request", lambda request: asked.append(request.url) if "openstreetmap" in request.url else None)
    search(page, "a photo")
    open_map(page, len(WITH_GPS))
    assert "no-tiles" in page.get_attribute("#map", "class") and not asked
    assert page.locator("#map .leaflet-tile").count() == 0
    page.click(marker("fiji.jpg"))
    page.wait_for_selector("#viewer_close", state="visible")


def test_a_drawn_area_filters_is_a_removable_chip_and_stays_in_the_url(page):
    search(page, "a photo")
    open_map(page, len(WITH_GPS))
    drag_around(page, "tokyo.jpg")
    wait_results(page, ["tokyo.jpg"])
    chip = page.locator("#area_chip")
    assert chip.is_visible() and "Map area" in chip.inner_text()
    assert "bbox=" in page.url
    page.reload()
    page.wait_for_selector("#area_chip", state="visible")
    wait_results(page, ["tokyo.jpg"])
    page.click("#area_chip")
    wait_results(page, list(PHOTOS))
    assert page.locator("#area_chip").is_hidden() and "bbox=" not in page.url


def test_search_this_area_uses_the_visible_map(page):
    search(page, "a photo")
    open_map(page, len(WITH_GPS))
    page.evaluate(
        "() => window.photoSearchMap(JSON.stringify({markers: [], count: 0, bbox: null, near: [38.72509, -9.1498, 5]}))"
    )  # the map fitted to a 5 km circle around Lisbon
    page.click("#map_search_area")
    page.wait_for_selector("#area_chip", state="visible")
    settled(page)
    shown = captions(page)
    assert "lisbon.jpg" in shown and "belem-side.jpg" in shown
    assert not {"porto.jpg", "tokyo.jpg", "fiji.jpg", "nogps.jpg"} & set(shown)


def test_within_5_km_of_lisbon_filters_and_the_map_draws_its_circle(page):
    search(page, "within 5 km of Lisbon")
    assert sorted(captions(page)) == ["belem-side.jpg", "lisbon.jpg"]
    open_map(page, 2)
    assert marker_names(page) == ["belem-side.jpg", "lisbon.jpg"]
    page.wait_for_selector("#map path.near-circle", state="attached")
    circle = page.locator("#map path.near-circle").bounding_box()
    assert circle["width"] > 50  # fitted to the circle, not a dot on a world map


def test_axe_finds_no_serious_problem_in_the_map_view(page, artifacts):
    search(page, "within 5 km of Lisbon")
    open_map(page, 2)
    # scan from the top, as the page-state scan does: scrolled on a phone, the sticky search bar lies over whatever
    # passes under it, and axe measures that text against the bar's blue button
    page.evaluate("window.scrollTo(0, 0)")
    # and once the pressed toggle's colour transition has ended (mid-way its text and background are neither state's)
    page.wait_for_function("() => document.getAnimations().every((a) => a.playState !== 'running')")
    serious = axe_serious(page)
    (artifacts / f"search_app-{page.viewport_name}-map-axe.txt").write_text(
        "\n".join(f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}" for v in serious)
    )
    assert not serious, [
        (v["id"], v["help"], [(n["target"], n.get("failureSummary")) for n in v["nodes"]][:3]) for v in serious
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/map-static/../map_view.py",
        "/map-static/%2e%2e/map_view.py",
        "/map-static/leaflet/%2e%2e%2f%2e%2e%2fui.py",
        "/map-static/..%2f..%2fpyproject.toml",
    ],
)
def test_the_map_files_route_refuses_paths_outside_its_folder(map_app, path):
    parts = urlsplit(map_app)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", path)  # sent as written: no client tidies the dots away
    answer = connection.getresponse()
    body = answer.read()
    assert answer.status in (400, 404), (path, answer.status)
    assert b"import " not in body and b"[project]" not in body
    connection.request("GET", "/map-static/leaflet/leaflet.js", headers={"Host": "evil.example"})
    foreign = connection.getresponse()
    foreign.read()
    assert foreign.status == 400  # the Host guard stands in front of the map's files as of every route
    connection.request("GET", "/map-static/leaflet/leaflet.js")
    served = connection.getresponse()
    assert served.status == 200 and b"Leaflet" in served.read()[:400]
