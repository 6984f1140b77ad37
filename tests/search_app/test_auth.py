"""Login: the real app with a users file refuses anonymous page, API and file requests, serves logged-in ones
(gradio_client and a real Chromium), slows down guessing from one address only, and keeps previews private."""
from __future__ import annotations

import os
import stat
import time

import httpx
import pytest
from gradio_client import Client

from search_app.auth import add_user

from .conftest import new_home, running_app
from .test_browser import CHROMIUM, FLAGS

pytestmark = pytest.mark.server  # starts the app in a subprocess

USER, PASSWORD = "alice", "correct horse battery"
SECRET_USER, SECRET_PASSWORD = "bob", "bob-from-a-secret"  # MME5_AUTH: hashed at start, checked like file users


@pytest.fixture(scope="module")
def secured(tmp_path_factory, library, tiny_mllama_dir):
    """(url, the app's HOME) of `python app.py --auth-file users` indexing ``library`` on first start."""
    work = tmp_path_factory.mktemp("secured")
    users = work / "users"
    add_user(users, USER, PASSWORD)
    args = ["--index", str(work / "index"), "--model", str(tiny_mllama_dir), "--photos", str(library),
            "--page-size", "4", "--auth-file", str(users)]
    with new_home() as home, running_app(work, args, env={"MME5_AUTH": f"{SECRET_USER}:{SECRET_PASSWORD}"},
                                           home=home) as url:  # MME5_AUTH: the test is about it
        yield url, home


def client_from(address: str) -> httpx.Client:
    """An HTTP client whose requests come from ``address`` (any 127.x address reaches the server on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def test_anonymous_page_api_and_file_requests_are_refused(secured, library):
    url, _ = secured
    with client_from("127.0.0.1") as http:
        page = http.get(url).text  # the login page: no layout, no components (Gradio still describes the API)
        assert '"auth_required": true' in page.replace('":true', '": true') and '"components": []' in page.replace(
            '":[]', '": []')
        assert str(library) not in page and "2024/green.jpg" not in page
        assert http.get(f"{url}config").status_code == 401
        assert http.get(f"{url}gradio_api/info").status_code == 401
        for endpoint in ("search_text", "search_image", "search_composed"):
            assert http.post(f"{url}gradio_api/call/{endpoint}", json={"data": ["x"]}).status_code == 401
        assert http.post(f"{url}gradio_api/upload", files={"files": ("a.jpg", b"x")}).status_code == 401
        assert http.get(f"{url}gradio_api/file={library}/2024/green.jpg").status_code == 401
    with pytest.raises(Exception, match="credentials were not provided"):
        Client(url, verbose=False)
    with pytest.raises(Exception, match="Could not login"):
        Client(url, auth=(USER, "wrong password"), verbose=False)


def test_the_maps_files_are_behind_the_login_as_the_page_is(secured):
    url, _ = secured
    with client_from("127.0.0.1") as http:
        assert http.get(f"{url}map-static/leaflet/leaflet.js").status_code == 401
        assert http.post(f"{url}login", data={"username": SECRET_USER, "password": SECRET_PASSWORD}).status_code == 200
        served = http.get(f"{url}map-static/leaflet/leaflet.js")
        assert served.status_code == 200 and "Leaflet" in served.text[:400]
        assert http.get(f"{url}map-static/%2e%2e/auth.py").status_code == 404  # logged in, still only its files


def test_gradio_client_with_a_login_searches(secured):
    url, _ = secured
    client = Client(url, auth=(USER, PASSWORD), verbose=False)
    answer = client.predict(text="un perro en la playa", k=3, api_name="/search_text")
    assert len(answer["results"]) == 3 and answer["total_indexed"] == 12


@pytest.mark.browser
def test_browser_logs_in_searches_and_previews_stay_behind_the_login(secured):
    from playwright.sync_api import sync_playwright

    url, home = secured
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_label("username").fill(USER)
            page.get_by_label("password").fill("not the password")
            page.get_by_role("button", name="Login").click()
            page.wait_for_selector("text=Incorrect Credentials")
            page.get_by_label("username").fill(USER)  # the form clears itself after a failure
            page.get_by_label("password").fill(PASSWORD)
            page.get_by_role("button", name="Login").click()
            box = page.locator("#query input, #query textarea").first
            box.fill("кошка на диване")
            page.click("#search")
            page.wait_for_selector("#results img")
            preview = page.locator("#results img").first.get_attribute("src")
            logged_in = page.request.get(preview)
            assert logged_in.status == 200 and logged_in.body()[:2] == b"\xff\xd8"  # a JPEG preview
        finally:
            browser.close()
    assert httpx.get(preview, timeout=30).status_code == 401  # the same preview URL without the login cookie
    # Gradio's copy of the preview lies in the private cache, not in the shared temp folder.
    assert str(home / ".cache" / "mme5-search" / "gradio") in httpx.URL(preview).path


def test_preview_folders_are_private(secured):
    url, home = secured
    Client(url, auth=(USER, PASSWORD), verbose=False)  # the server is up: folders exist
    cache = home / ".cache" / "mme5-search"
    for folder in (cache / "previews", cache / "gradio"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        assert folder.stat().st_uid == os.geteuid()
    previews = list((cache / "previews").glob("*.jpg"))
    assert previews and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in previews)


def timed_login(http: httpx.Client, url: str, password: str) -> tuple[int, float]:
    started = time.monotonic()
    response = http.post(f"{url}login", data={"username": SECRET_USER, "password": password})
    return response.status_code, time.monotonic() - started


def test_repeated_failures_slow_down_that_address_only(secured):
    url, _ = secured
    with client_from("127.0.0.3") as guesser, client_from("127.0.0.4") as owner:
        free = [timed_login(guesser, url, f"guess {n}") for n in range(5)]
        assert [code for code, _ in free] == [400] * 5
        assert min(seconds for _, seconds in free) < 1.0  # the first five are not delayed
        sixth, seventh = timed_login(guesser, url, "guess 6"), timed_login(guesser, url, "guess 7")
        assert sixth[0] == seventh[0] == 400
        assert sixth[1] >= 1.0 and seventh[1] >= 2.0  # then 1 s, 2 s ... before each answer
        code, seconds = timed_login(owner, url, SECRET_PASSWORD)  # the real user, elsewhere, is not locked out
        assert code == 200 and seconds < seventh[1] - 1.0
        code, seconds = timed_login(guesser, url, SECRET_PASSWORD)  # nor from the guessed address: slower, then in
        assert code == 200 and seconds >= 4.0
        assert timed_login(guesser, url, "wrong again")[0] == 400  # a success resets the count
        assert timed_login(guesser, url, SECRET_PASSWORD)[0] == 200
