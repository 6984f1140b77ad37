"""The page in the user's world, in Chromium at desktop and phone size: log in, search by text and by an upload,
open a result and download its original, "more like this", an album zip, similar groups. The index and the login
are made with the CLIs as the README writes them; the app is started by path from the photo folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
import pytest

from .conftest import SIZES, open_page, wait_status

pytestmark = [pytest.mark.server, pytest.mark.browser]

USER, PASSWORD = "alice", "a long enough password"
QUERY = "#query input, #query textarea"


@pytest.fixture(scope="module")
def served(user_world, library):
    """`python -m search_app add-user alice` (password typed twice), then `python ~/CLONE/app.py --index INDEX`
    from ~/Pictures: the users file is found in ~/.config by itself."""
    user_world.run(["-m", "search_app", "add-user", USER], cwd=user_world.clone, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert (user_world.home / ".config" / "mme5-search").is_dir()
    with user_world.app([str(user_world.clone / "app.py"), "--index", str(library.index)]) as url:
        yield url


@pytest.fixture(params=list(SIZES))
def page(request, served, browser):
    page = open_page(browser, served, request.param)
    page.size = request.param
    page.get_by_label("username").fill(USER)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()  # the app's own login page (search_app/login_page.py)
    page.wait_for_selector("#query input, #query textarea")
    yield page
    page.context.close()


def search(page, text: str, expect: str = "Showing") -> None:
    page.locator(QUERY).first.fill(text)
    page.click("#search")
    wait_status(page, expect)
    page.wait_for_selector("#results img")


def open_result(page, number: int) -> None:
    """Click result ``number`` until its details show: under load a click can land while the gallery repaints."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        page.locator("#results .thumbnail-item").nth(number).click()
        try:
            page.wait_for_function(
                "(document.querySelector('#details') || {innerText: ''}).innerText.includes('score')", timeout=20_000
            )
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def assert_images_arrive(page, selector: str) -> None:
    """Every image under ``selector`` is really served (a JPEG, with the login), not a broken image."""
    sources = [image.get_attribute("src") for image in page.locator(f"{selector} img").all()]
    assert sources, selector
    for source in sources:
        answer = page.request.get(source)
        assert answer.status == 200 and answer.body()[:2] == b"\xff\xd8", source
    assert httpx.get(sources[0], timeout=30).status_code in (401, 403)  # not without the login


def test_text_search_shows_previews(page, artifacts):
    search(page, "a dog on the beach")
    assert_images_arrive(page, "#results")
    page.screenshot(path=str(artifacts / f"userworld-results-{page.size}.png"), full_page=True)


def test_upload_search(page, library, user_world):
    page.set_input_files("#upload input[type=file]", str(user_world.photos / library.photos[1]))
    page.wait_for_selector("#upload img")
    page.click("#search")
    wait_status(page, "for your photo.")
    assert_images_arrive(page, "#results")


def test_open_a_result_and_download_its_original(page, user_world):
    search(page, "a photo")
    open_result(page, 0)
    page.wait_for_selector("#original", state="visible")
    name = page.inner_text("#details").split("\n")[0].strip("* ")  # the file's name (its folder is named below it)
    path = next(user_world.photos.rglob(name))
    with page.expect_download() as download:
        page.click("#original")
    assert Path(download.value.path()).read_bytes() == path.read_bytes()


def test_more_like_this_shows_its_source_photo(page):
    search(page, "a photo")
    open_result(page, 1)
    page.wait_for_selector("#more_like_this", state="visible")
    page.click("#more_like_this")
    wait_status(page, "photos like")
    page.wait_for_selector("#source img")
    assert_images_arrive(page, "#source")
    assert_images_arrive(page, "#results")


def open_panel(page, elem_id: str, inner: str) -> None:
    if not page.locator(inner).is_visible():
        page.click(f"#{elem_id} > button, #{elem_id} .label-wrap")
        page.wait_for_selector(inner, state="visible")


def test_an_album_zip_downloads(page, user_world):
    name = f"Trip {page.size}"
    search(page, "a photo")
    open_panel(page, "albums", "#album_name")
    page.locator("#album_name input, #album_name textarea").first.fill(name)
    page.click("#save_album")
    wait_status(page, f"Saved the album “{name}”")
    page.click("#make_zip")
    page.wait_for_selector("#album_zip", state="visible")
    with page.expect_download() as download:
        page.click("#album_zip")
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
    photos = {path.name: path for path in user_world.photos.rglob("*.jpg")}
    assert names and all(Path(name).name in photos for name in names), names


def test_similar_groups(page, library, artifacts):
    open_panel(page, "similar_panel", "#find_groups")
    page.click("#find_groups")
    wait_status(page, "of near-identical photos at similarity")
    text = page.inner_text("#results")
    assert "★ best" in text and library.copy.name in text
    assert_images_arrive(page, "#results")
    page.screenshot(path=str(artifacts / f"userworld-similar-groups-{page.size}.png"), full_page=True)
