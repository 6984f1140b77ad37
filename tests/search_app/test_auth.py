"""Login: the real app with a users file refuses anonymous page, API and file requests, serves logged-in ones
(gradio_client and a real Chromium), slows down guessing from one address only, and keeps previews private."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from search_app.auth import add_user
from search_app.tokens import add_token, tokens_file_for

from .conftest import new_home, running_app
from .test_browser import CHROMIUM, FLAGS
from .conftest import axe_serious

pytestmark = pytest.mark.server  # starts the app in a subprocess

USER, PASSWORD = "alice", "correct horse battery"
SECRET_USER, SECRET_PASSWORD = "bob", "bob-from-a-secret"  # MME5_AUTH: hashed at start, checked like file users


@pytest.fixture(scope="module")
def secured(tmp_path_factory, library, tiny_mllama_dir):
    """(url, the app's HOME) of `python app.py --auth-file users` indexing ``library`` on first start."""
    work = tmp_path_factory.mktemp("secured")
    users = work / "users"
    add_user(users, USER, PASSWORD)
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(library),
        "--page-size",
        "4",
        "--auth-file",
        str(users),
    ]
    with (
        new_home() as home,
        running_app(work, args, env={"MME5_AUTH": f"{SECRET_USER}:{SECRET_PASSWORD}"}, home=home) as url,
    ):  # MME5_AUTH: the test is about it
        app = Secured((url, home))
        app.users = users
        yield app


class Secured(tuple):
    """(url, the app's HOME), as the tests unpack it; ``users``: its users file (API tokens live beside it)."""

    users: Path


def client_from(address: str) -> httpx.Client:
    """An HTTP client whose requests come from ``address`` (any 127.x address reaches the server on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def test_anonymous_page_api_and_file_requests_are_refused(secured, library):
    url, _ = secured
    with client_from("127.0.0.1") as http:
        page = http.get(url).text  # the app's own login page: a form, nothing of the library
        assert 'autocomplete="current-password"' in page and "Log in to search this photo library." in page
        assert str(library) not in page and "2024/green.jpg" not in page and "components" not in page
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
            page.get_by_role("button", name="Log in").click()
            page.wait_for_selector("text=Wrong user name or password")
            page.get_by_label("username").fill(USER)
            page.get_by_label("password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
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
    token = add_token(tokens_file_for(secured.users), "previews")  # the app follows the tokens file while it runs
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        found = http.get(f"{url}api/v1/search/text", params={"text": "a photo", "k": 1}).json()["results"][0]
        preview = http.get(f"{url}api/v1/photos/{found['image_id']}/preview")  # made now, in the app's cache
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
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


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_the_login_form_helps_password_managers_keeps_the_name_and_log_out_ends_the_session(secured, viewport):
    """autocomplete attributes on the fields, the typed user name kept after a wrong password, and a "Log out"
    control on the app's page that ends the session: the login page again, and the old cookie refused by the API."""
    from playwright.sync_api import sync_playwright

    url, _ = secured
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            name, password = page.get_by_label("username"), page.get_by_label("password")
            assert not [v["id"] for v in axe_serious(page)]  # the login page is a page of the app too
            assert name.get_attribute("autocomplete") == "username"
            assert password.get_attribute("autocomplete") == "current-password"
            assert password.get_attribute("type") == "password"
            name.fill(USER)
            password.fill("not the password")
            password.press("Enter")  # Enter submits, like the button
            page.wait_for_selector("text=Wrong user name or password")
            assert name.input_value() == USER and password.input_value() == ""  # only the password is emptied
            assert page.evaluate("document.activeElement.id") == "password"
            password.fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_selector("#query input, #query textarea")
            cookies = {cookie["name"]: cookie["value"] for cookie in context.cookies()}
            with httpx.Client(cookies=cookies, timeout=30) as http:
                assert http.get(f"{url}config").status_code == 200  # the login cookie works
                logout = page.get_by_role("link", name="Log out")
                assert logout.is_visible()
                logout.click()
                page.wait_for_selector("#username")  # back on the login page
                assert page.locator("#query").count() == 0
                assert http.get(f"{url}config").status_code == 401  # the old cookie no longer opens the app
            page.goto(url)  # and the browser is logged out too
            page.wait_for_selector("#username")
        finally:
            browser.close()


@pytest.mark.parametrize(
    "path, cookie, served",
    [
        ("/", b"", "login"),
        ("/", b"access-token-c1=stolen", "login"),
        ("/", b'bad"cookie;;=\xff', "login"),
        ("/", b"access-token-unsecure-c1=known", "app"),
        ("/config", b"", "app"),
        ("/gradio_api/info", b"", "app"),
        ("/app/", b"", "login"),  # behind a proxy's path prefix (root_path /app)
    ],
)
def test_the_login_page_answers_only_a_visit_without_a_valid_login(path, cookie, served):
    """Everything but a plain visit, and every visit with a login cookie Gradio knows, goes on to Gradio (which
    refuses what needs a login); a forged or malformed cookie is no login."""
    import asyncio
    from types import SimpleNamespace

    from search_app.login_page import LoginPage

    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    sent = []

    async def send(message):
        sent.append(message)

    gradio = SimpleNamespace(tokens={"known": USER}, cookie_id="c1")
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "/app" if path.startswith("/app") else "",
        "headers": [(b"cookie", cookie)] if cookie else [],
        "app": gradio,
    }
    asyncio.run(LoginPage(app)(scope, None, send))
    if served == "app":
        assert reached == [path] and not sent
    else:
        assert not reached and sent[0]["status"] == 200
        assert b'autocomplete="username"' in sent[1]["body"] and (b"cache-control", b"no-store") in sent[0]["headers"]
