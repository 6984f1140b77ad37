"""The REST API on the real server (`python app.py` with a login): tokens made and revoked with the CLI, the
OpenAPI schema linked from the page, the same JSON as gradio_client, 400 sentences, 503 when full, files by id."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio_client import Client, handle_file

from search_app.auth import add_user

from .conftest import REPO, make_photo, running_app

USER, PASSWORD = "alice", "correct horse battery"
pytestmark = pytest.mark.server


def token_cli(work, *args: str) -> subprocess.CompletedProcess:
    """`python -m search_app add-token/revoke-token ...` as the app's owner runs it (a fresh HOME)."""
    return subprocess.run(
        [sys.executable, "-m", "search_app", *args, "--auth-file", str(work / "users")],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory, library, tiny_mllama_dir):
    """(api url, page url, work folder, token) of `python app.py --auth-file users --concurrency 1 --api-queue 0`."""
    work = tmp_path_factory.mktemp("rest")
    (work / "home").mkdir()
    add_user(work / "users", USER, PASSWORD)
    made = token_cli(work, "add-token", "frame")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    args = [
        "--index",
        str(work / "index"),
        "--model",
        str(tiny_mllama_dir),
        "--photos",
        str(library),
        "--auth-file",
        str(work / "users"),
        "--concurrency",
        "1",
        "--api-queue",
        "0",
    ]
    with running_app(work, args, env={"HOME": str(work / "home")}) as url:
        yield f"{url}api/v1", url, work, token


@pytest.fixture(scope="module")
def api(secured):
    url, _, _, token = secured
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def gradio(secured):
    return Client(secured[1], auth=(USER, PASSWORD), verbose=False)


def without_timing(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key != "timing"}


def test_schema_is_served_and_linked_from_the_page_footer(secured):
    url, page, _, _ = secured
    schema = httpx.get(f"{url}/openapi.json", timeout=60)
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {
        "/search/text",
        "/search/image",
        "/search/composed",
        "/photos/{image_id}/screen",
        "/albums",
        "/similar-groups",
        "/health",
        "/info",
    } <= set(paths)
    assert "HTTPBearer" in schema.json()["components"]["securitySchemes"]
    with httpx.Client(base_url=page, timeout=60) as browser:
        assert browser.post("login", data={"username": USER, "password": PASSWORD}).status_code == 200
        config = browser.get("config").text
    assert "[REST API (OpenAPI)](api/v1/openapi.json)" in config


def test_no_token_or_a_wrong_one_is_refused_a_good_one_searches(secured, api):
    url, _, _, token = secured
    assert httpx.get(f"{url}/health", timeout=60).json() == {"status": "ok"}
    anonymous = httpx.get(f"{url}/search/text", params={"text": "beach"}, timeout=60)
    assert anonymous.status_code == 401 and "Authorization: Bearer" in anonymous.json()["error"]
    assert httpx.get(f"{url}/photos/1/original", timeout=60).status_code == 401
    wrong = httpx.get(f"{url}/info", headers={"Authorization": f"Bearer {token[:-2]}xx"}, timeout=60)
    assert wrong.status_code == 401
    answer = api.get("/search/text", params={"text": "beach", "k": 3})
    assert answer.status_code == 200 and len(answer.json()["results"]) == 3


def test_a_search_says_how_long_the_server_worked_on_it(api):
    """Server-Timing: the wait for a slot and the search itself, within what the client waited (bench_rest reads it)."""
    started = time.perf_counter()
    answer = api.get("/search/text", params={"text": "beach", "k": 3})
    waited_ms = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200
    timing = dict(re.findall(r"(\w+);dur=([\d.]+)", answer.headers["Server-Timing"]))
    assert set(timing) == {"queue", "work"}
    assert 0 < float(timing["work"]) and float(timing["queue"]) + float(timing["work"]) < waited_ms


def test_the_same_json_as_gradio_client(api, gradio, tmp_path):
    options = {"k": 5, "folder": "2023", "sort": "date_asc", "collapse_duplicates": False}
    rest = api.get("/search/text", params={"text": "Strand im Juli 2023", **options}).json()
    same = gradio.predict(text="Strand im Juli 2023", **options, api_name="/search_text")
    assert without_timing(rest) == without_timing(same) and rest["query_dates"]
    make_photo(tmp_path / "query.jpg", 5, None)
    rest = api.post(
        "/search/composed",
        files={"image": ("query.jpg", (tmp_path / "query.jpg").read_bytes())},
        data={"text": "at night", "k": "4"},
    ).json()
    same = gradio.predict(
        image=handle_file(str(tmp_path / "query.jpg")), text="at night", k=4, api_name="/search_composed"
    )
    assert without_timing(rest) == without_timing(same)
    assert api.get("/albums").json() == gradio.predict(api_name="/list_albums")


def test_a_too_long_query_is_400_with_the_uis_sentence(api, gradio):
    from search_app.encoding import MAX_QUERY_CHARS

    text = "plage " * (MAX_QUERY_CHARS // 6 + 1)
    answer = api.get("/search/text", params={"text": text})
    assert answer.status_code == 400
    with pytest.raises(Exception) as raised:  # gradio_client's AppError carries the app's message
        gradio.predict(text=text, api_name="/search_text")
    assert answer.json()["error"] == str(raised.value) and f"at most {MAX_QUERY_CHARS:,}" in answer.json()["error"]


def test_a_full_server_answers_503_with_retry_after_at_once(secured, api, tmp_path):
    make_photo(tmp_path / "q.jpg", 7, None)
    photo = (tmp_path / "q.jpg").read_bytes()

    def search(_):
        return api.post("/search/composed", files={"image": ("q.jpg", photo)}, data={"text": "at night"})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(search, range(32)))
    statuses = {answer.status_code for answer in answers}
    assert statuses == {200, 503}, statuses  # --concurrency 1 --api-queue 0: one runs, the rest are told to retry
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]
    assert max(answer.elapsed.total_seconds() for answer in answers if answer.status_code == 503) < 10


def test_photo_files_by_id_through_the_path_guard(api, library):
    first = api.get("/search/text", params={"text": "x", "k": 1, "folder": "2024"}).json()["results"][0]
    record = api.get(f"/photos/{first['image_id']}").json()
    assert record["relpath"] == first["relpath"]
    assert (
        api.get(record["links"]["original"].removeprefix("/api/v1")).content
        == (library / first["relpath"]).read_bytes()
    )
    for size in ("preview", "screen"):
        image = api.get(f"/photos/{first['image_id']}/{size}")
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8", image.text
    for hostile in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E", "1%00"):
        assert api.get(f"/photos/{hostile}/original").status_code in (400, 404)


def test_a_revoked_token_is_refused_at_once(secured):
    url, _, work, _ = secured
    made = token_cli(work, "add-token", "dashboard")
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    assert httpx.get(f"{url}/info", headers=headers, timeout=60).status_code == 200
    revoked = token_cli(work, "revoke-token", "dashboard")
    assert revoked.returncode == 0, revoked.stderr
    refused = httpx.get(f"{url}/info", headers=headers, timeout=60)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]


def test_tokens_never_appear_in_the_app_log(secured):
    """A good, a wrong and a revoked token each sent here (not relying on other tests), then the log read."""
    url, _, work, _ = secured
    made = token_cli(work, "add-token", "logged")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    wrong = token[:-2] + ("xx" if not token.endswith("xx") else "yy")
    for sent, status in ((token, 200), (wrong, 401)):
        assert httpx.get(f"{url}/info", headers={"Authorization": f"Bearer {sent}"}, timeout=60).status_code == status
    assert token_cli(work, "revoke-token", "logged").returncode == 0
    assert httpx.get(f"{url}/info", headers={"Authorization": f"Bearer {token}"}, timeout=60).status_code == 401
    log = (work / "app.log").read_text(errors="replace")
    assert "serving" in log  # the app's own log is there
    for secret in (token, wrong, "mme5_"):
        assert secret not in log
