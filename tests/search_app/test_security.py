"""Hostile requests to a running app: a DNS-rebinding page's foreign Host, a users file edited while the app runs,
timing that would reveal user names, a slow similar-groups call that must not hold up searches, and inputs over
the bounds of search_app/limits.py."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from PIL import Image

from search_app.auth import add_user, load_auth

from .conftest import running_app

EVIL = "rebind.evil.example"
USER, PASSWORD = "alice", "correct horse battery"


# -- a library whose similar-photo groups take seconds (big smooth PNGs: small files, slow to decode) -----------
def make_slow_library(root: Path, count: int = 24) -> Path:
    base = Image.linear_gradient("L").resize((4000, 3000))
    for number in range(count):
        red = base.point(lambda value, shift=number * 9: (value + shift) % 256)
        Image.merge("RGB", [red, base, base.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]).save(root / f"p{number}.png")
    return root


@pytest.fixture(scope="module")
def open_app(tmp_path_factory, tiny_mllama_dir):
    """(url, library) of the default app: loopback, no login, plus one configured name (--allowed-host)."""
    work = tmp_path_factory.mktemp("open-app")
    library = make_slow_library(tmp_path_factory.mktemp("slow-library"))
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(library),
        "--allowed-host",
        "photos.lan",
    ]
    with running_app(work, args) as url:
        yield url, library, work


def raw(method: str, url: str, host: str | None = None, origin: str | None = None, **kwargs) -> httpx.Response:
    headers = {**({"Host": host} if host else {}), **({"Origin": origin} if origin else {})}
    return httpx.request(method, url, headers=headers, timeout=60, **kwargs)


@pytest.mark.server
def test_a_dns_rebinding_request_with_a_foreign_host_is_refused(open_app):
    url, library, _ = open_app
    port = httpx.URL(url).port
    search = {"data": ["un perro", 3]}
    photo = f"{url}gradio_api/file={next(library.glob('*.png'))}"
    for host in (EVIL, f"{EVIL}:{port}"):
        page = raw("GET", url, host)
        assert page.status_code == 400 and f"host name '{EVIL}'" in page.text and "--allowed-host" in page.text
        assert raw("GET", f"{url}config", host).status_code == 400
        assert raw("GET", f"{url}gradio_api/info", host).status_code == 400
        call = raw("POST", f"{url}gradio_api/call/search_text", host, json=search)
        assert call.status_code == 400 and "event_id" not in call.text
        assert raw("GET", photo, host).status_code == 400
    # A page elsewhere driving the app through the user's browser: right Host, foreign Origin.
    refused = raw("POST", f"{url}gradio_api/call/search_text", origin=f"http://{EVIL}", json=search)
    assert refused.status_code == 403 and EVIL in refused.text
    assert raw("POST", f"{url}gradio_api/call/search_text", origin="null", json=search).status_code == 403
    # The names the app is served under still work: loopback names, the address, a configured name.
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "photos.lan", f"[::1]:{port}", f"app.localhost:{port}"):
        assert raw("GET", url, host).status_code == 200, host
    answer = raw("POST", f"{url}gradio_api/call/search_text", "photos.lan", origin="http://photos.lan", json=search)
    assert answer.status_code == 200 and "event_id" in answer.json()


@pytest.mark.server
def test_a_search_is_answered_while_a_slow_similar_groups_call_runs(open_app):
    """Similar groups run in their own slot: a search sent while they run is answered before they finish."""
    from gradio_client.utils import Status

    url, *_ = open_app
    client = Client(url, verbose=False)
    client.predict(text="warm up", k=3, api_name="/search_text")
    alone = time.monotonic()
    client.predict(text="a quiet street", k=3, api_name="/search_text")
    alone = time.monotonic() - alone  # a search with nothing else running, on this machine
    started = time.monotonic()
    groups = client.submit(threshold=0.9995, api_name="/similar_groups")
    deadline = started + 120
    while groups.status().code != Status.PROCESSING:
        assert time.monotonic() < deadline, "the similar-groups call never started"
        time.sleep(0.05)
    asked = time.monotonic()
    answer = client.predict(text="a beach at sunset", k=3, api_name="/search_text")
    latency = time.monotonic() - asked
    still_running = not groups.done()
    payload = groups.result(timeout=300)
    took = time.monotonic() - started
    assert payload["groups"], "the library has near-identical photos"
    assert took > 4 * alone, (
        f"the similar-groups call took {took:.1f} s, a search alone {alone:.1f} s: too close "
        "to tell them apart; make the library bigger"
    )
    assert len(answer["results"]) == 3
    assert still_running, (
        f"the search (answered after {latency:.1f} s) waited for the similar-groups call ({took:.1f} s) to finish"
    )
    assert latency < took / 2


@pytest.mark.server
def test_similar_groups_refuse_a_threshold_below_the_floor(open_app):
    url, *_ = open_app
    client = Client(url, verbose=False)
    started = time.monotonic()
    with pytest.raises(Exception, match="threshold must be from 0.8 to 1, got 0.1"):
        client.predict(threshold=0.1, api_name="/similar_groups")
    assert time.monotonic() - started < 30  # refused before any work (it took minutes at 6,000 photos)


@pytest.mark.server
def test_raw_uploads_keep_only_photo_files(open_app):
    url, _, work = open_app
    cache = work / "cache" / "mme5-search" / "gradio"
    page = b"<html><script>fetch('/gradio_api/info')</script></html>"
    refused = httpx.post(f"{url}gradio_api/upload", files={"files": ("page.html", page, "text/html")}, timeout=60)
    assert refused.status_code == 415
    assert refused.text.startswith("The upload page.html is not a photo file: upload a photo (jpg, jpeg")
    assert not [path for path in cache.rglob("*") if path.is_file() and path.read_bytes() == page]
    photo = work / "photo.png"
    Image.new("RGB", (8, 8), "red").save(photo)
    stored = httpx.post(f"{url}gradio_api/upload", files={"files": ("photo.png", photo.read_bytes())}, timeout=60)
    assert stored.status_code == 200 and Path(stored.json()[0]).read_bytes() == photo.read_bytes()


# -- login follows the users file ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def secured(tmp_path_factory, library, tiny_mllama_dir):
    work = tmp_path_factory.mktemp("secured-reload")
    users = work / "users"
    add_user(users, USER, PASSWORD)
    add_user(users, "carol", "carol's first password")
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(library),
        "--auth-file",
        str(users),
    ]
    with running_app(work, args) as url:
        yield url, users


def logged_in(url: str, name: str, password: str) -> httpx.Client | None:
    """An HTTP client holding the login cookie of ``name`` (None when the login is refused)."""
    http = httpx.Client(timeout=60)
    if http.post(f"{url}login", data={"username": name, "password": password}).status_code != 200:
        http.close()
        return None
    return http


@pytest.mark.server
def test_the_users_file_is_followed_while_the_app_runs(secured):
    url, users = secured
    alice, carol = logged_in(url, USER, PASSWORD), logged_in(url, "carol", "carol's first password")
    assert alice and carol and alice.get(f"{url}config").status_code == carol.get(f"{url}config").status_code == 200
    # A user added while the app runs logs in at once.
    add_user(users, "dave", "dave's password 1")
    assert logged_in(url, "dave", "dave's password 1") is not None
    # add-user changes alice's password: the old one is refused, the new one works, her old session ends.
    add_user(users, USER, "a brand new password")
    assert logged_in(url, USER, PASSWORD) is None
    assert alice.get(f"{url}config").status_code == 401
    fresh = logged_in(url, USER, "a brand new password")
    assert fresh is not None and fresh.get(f"{url}config").status_code == 200
    # carol is removed from the file (edited by hand): her open session ends and she cannot log in again.
    users.write_text("".join(line + "\n" for line in users.read_text().splitlines() if not line.startswith("carol:")))
    assert carol.get(f"{url}config").status_code == 401
    assert carol.post(f"{url}gradio_api/call/search_text", json={"data": ["x"]}).status_code == 401
    assert logged_in(url, "carol", "carol's first password") is None
    assert fresh.get(f"{url}config").status_code == 200  # the others stay logged in
    # A broken file lets nobody in (rather than the users of an older version of it).
    users.write_text("this is not a users file\n")
    assert fresh.get(f"{url}config").status_code == 401 and logged_in(url, "dave", "dave's password 1") is None
    add_user(users.with_name("users.new"), USER, "a brand new password")
    users.with_name("users.new").replace(users)
    assert logged_in(url, USER, "a brand new password") is not None


def test_a_name_is_not_revealed_by_how_fast_its_wrong_password_is_refused(tmp_path, monkeypatch):
    """MME5_AUTH's user, a file user and an unknown name cost the same argon2 check (medians, as a ratio).

    The three names take turns and the cost is the process's CPU time (argon2's lanes run in threads), so
    another test process sharing the cores slows all three alike instead of landing on one name's turn.
    """
    users = tmp_path / "users"
    add_user(users, USER, PASSWORD)
    auth = load_auth(users, "bob:bob-from-a-secret")  # MME5_AUTH's value, as a Space secret gives it
    names = ("bob", USER, "nobody")
    times: dict[str, list[float]] = {name: [] for name in names}
    for attempt in range(7):
        for name in names:
            started = time.process_time()
            assert not auth.check(name, f"wrong {attempt}")
            times[name].append(time.process_time() - started)
    secret, known, unknown = (statistics.median(times[name]) for name in names)
    assert 0.5 < secret / unknown < 2 and 0.5 < known / unknown < 2, (secret, known, unknown)
    assert auth.check("bob", "bob-from-a-secret") and auth.check(USER, PASSWORD)


def test_sessions_of_users_removed_from_the_file_end_on_the_next_request(tmp_path):
    """SessionGuard forgets Gradio's login tokens of removed users (the part of the server test above, in-process)."""
    import asyncio

    from search_app.auth import SessionGuard

    users = tmp_path / "users"
    add_user(users, USER, PASSWORD)
    add_user(users, "carol", "carol's first password")
    auth = load_auth(users, None)

    class App:
        tokens = {"t-alice": USER, "t-carol": "carol"}

        async def __call__(self, scope, receive, send):
            self.seen = dict(self.tokens)

    app = App()
    guard = SessionGuard(app, auth)
    asyncio.run(guard({"type": "http", "app": app}, None, None))
    assert app.seen == {"t-alice": USER, "t-carol": "carol"}
    users.write_text(users.read_text().replace("carol:", "#carol:"))
    asyncio.run(guard({"type": "http", "app": app}, None, None))
    assert app.seen == {"t-alice": USER}
    assert not auth.check("carol", "carol's first password") and auth.check(USER, PASSWORD)


def test_the_host_allow_list():
    from search_app.hosts import allowed_hosts

    local = allowed_hosts("127.0.0.1", environ={})
    assert all(
        local.allows(host) for host in ("localhost", "127.0.0.1", "::1", "10.0.0.7", "LOCALHOST.", "a.localhost")
    )
    assert not any(local.allows(host) for host in (EVIL, "", "localhost.evil.example", "photos.lan"))
    configured = allowed_hosts("127.0.0.1", ["photos.lan"], environ={"MME5_ALLOWED_HOSTS": "a.example, b.example"})
    assert all(configured.allows(host) for host in ("photos.lan", "a.example", "b.example"))
    space = allowed_hosts("0.0.0.0", environ={"SPACE_HOST": "alice-photos.hf.space"})
    assert space.allows("alice-photos.hf.space") and not space.allows("bob-photos.hf.space")
    assert allowed_hosts("127.0.0.1", share=True, environ={}).allows("abc123.gradio.live")
    assert not local.allows("abc123.gradio.live")
