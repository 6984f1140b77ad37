"""The REST app (search_app/rest.py) in-process over the real engine and index: answers, bounds, the path guard,
tokens and their throttle; the real server is tested in test_rest.py."""

from __future__ import annotations

import asyncio
import stat
import time

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from search_app.api import Answers
from search_app.auth import AuthError
from search_app.encoding import MAX_QUERY_CHARS, check_length
from search_app.rest import MAX_BODY_BYTES, SCREEN_SIZE, Busy, RestAPI, Slots, upload_name
from search_app.tokens import TokenStore, add_token, read_tokens, revoke_token, tokens_file_for

from .conftest import make_photo


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    """A fresh HOME: previews, renditions and uploads land in its cache folder, as for a user."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("XDG_CACHE_HOME", raising=False)
        yield home


@pytest.fixture(scope="module")
def rest(engine, home):
    with TestClient(mounted(RestAPI(engine)), base_url="http://127.0.0.1/api/v1") as client:
        yield client


def mounted(api: RestAPI) -> Starlette:
    """The REST app at /api/v1, as serve() mounts it on the Gradio server."""
    return Starlette(routes=[api.mount()])


def without_timing(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key != "timing"}


def test_text_search_is_the_gradio_apis_answer(rest, engine):
    answer = rest.get("/search/text", params={"text": "写真", "k": 50, "folder": "2023", "sort": "date_asc"})
    assert answer.status_code == 200
    payload = answer.json()
    assert [r["relpath"] for r in payload["results"]] == [
        "2023/beach/red.jpg",
        "2023/beach/orange.jpg",
        "2023/city/blue.jpg",
    ]
    same = Answers(engine).search_text("写真", k=50, folder="2023", sort="date_asc")
    assert without_timing(payload) == without_timing(same)
    assert payload["total_indexed"] == engine.stats()["images"]


def test_every_option_of_the_gradio_api_is_a_documented_parameter(rest):
    from search_app.api import parameters

    schema = rest.get("/openapi.json").json()
    names = [p["name"] for p in schema["paths"]["/search/text"]["get"]["parameters"]]
    assert names == ["text", *(name for name, _, _ in parameters())]
    assert all(p.get("description") for p in schema["paths"]["/search/text"]["get"]["parameters"])
    form = schema["paths"]["/search/composed"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form


@pytest.mark.parametrize(
    "params, sentence",
    [
        ({"text": "x" * (MAX_QUERY_CHARS + 1)}, None),  # the engine's own sentence, as the UI shows it
        ({"text": "beach", "k": 0}, "k must be a whole number from 1 to 200, got 0"),
        ({"text": "beach", "k": 201}, "k must be a whole number from 1 to 200, got 201"),
        ({"text": "beach", "date_from": "last summer"}, "date_from 'last summer' is not a date"),
        ({"text": "beach", "sort": "random"}, "sort must be one of score, date, date_asc, got 'random'"),
        ({"text": "beach", "k": "many"}, "k: "),
        ({}, "text: Field required"),
    ],
)
def test_bad_input_is_400_with_one_sentence(rest, params, sentence):
    answer = rest.get("/search/text", params=params)
    assert answer.status_code == 400
    error = answer.json()["error"]
    if sentence is None:
        with pytest.raises(ValueError) as raised:
            check_length(params["text"])
        assert error == str(raised.value)
    else:
        assert sentence in error
    assert "Traceback" not in error


def jpeg_bytes(tmp_path, seed=3) -> bytes:
    path = tmp_path / "query.jpg"
    make_photo(path, seed, None)
    return path.read_bytes()


def test_image_and_composed_search_take_a_multipart_upload(rest, engine, tmp_path, home):
    photo = jpeg_bytes(tmp_path)
    by_image = rest.post("/search/image", files={"image": ("cat.jpg", photo, "image/jpeg")}, data={"k": "3"})
    assert by_image.status_code == 200 and len(by_image.json()["results"]) == 3
    composed = rest.post(
        "/search/composed",
        files={"image": ("cat.jpg", photo, "image/jpeg")},
        data={"text": "but at night", "k": "2", "folder": "2024"},
    )
    assert composed.status_code == 200
    assert [r["relpath"].startswith("2024/") for r in composed.json()["results"]] == [True, True]
    assert list((home / ".cache" / "mme5-search" / "uploads").iterdir()) == []  # each upload removed after use


def test_a_bad_upload_gets_the_uis_sentence_naming_the_file(rest):
    answer = rest.post("/search/image", files={"image": ("../../notes.txt", b"not a photo", "image/jpeg")})
    assert answer.status_code == 400
    from search_app.limits import not_a_photo_file

    assert answer.json()["error"] == str(not_a_photo_file("notes.txt"))  # the UI's own sentence, named file
    empty = rest.post("/search/composed", files={"image": ("a.jpg", b"", "image/jpeg")}, data={"text": "x"})
    assert empty.status_code == 400 and "is empty (0 bytes)" in empty.json()["error"]


def test_upload_names_are_reduced_to_a_plain_file_name():
    assert upload_name("../../etc/passwd") == "passwd"
    assert upload_name("C:\\Users\\me\\cat.jpg") == "cat.jpg"
    assert upload_name("a\x00b<script>.jpg") == "a_b_script_.jpg"
    assert upload_name("..") == "upload" and upload_name(None) == "upload" and len(upload_name("x" * 500)) == 100


def test_a_body_over_the_limit_is_refused_before_it_is_read(rest):
    answer = rest.post(
        "/search/image",
        headers={"content-length": str(MAX_BODY_BYTES + 1), "content-type": "multipart/form-data; boundary=x"},
        content=b"",
    )
    assert answer.status_code == 413 and "MB" in answer.json()["error"]

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(MAX_BODY_BYTES // 2**20 + 2):
            yield b"\0" * 2**20

    streamed = rest.post("/search/image", headers={"content-type": "multipart/form-data; boundary=x"}, content=chunks())
    assert streamed.status_code == 413


def test_photo_record_and_files(rest, engine, library):
    record = engine.store.records(engine.store.ids()[:1])[0]
    answer = rest.get(f"/photos/{record.id}")
    assert answer.status_code == 200
    payload = answer.json()
    assert payload["image_id"] == record.id and payload["relpath"] == record.relpath and "score" not in payload
    original = rest.get(payload["links"]["original"].removeprefix("/api/v1"))
    assert original.status_code == 200 and original.content == (library / record.relpath).read_bytes()
    for route, size in (("preview", 384), ("screen", SCREEN_SIZE)):
        image = rest.get(f"/photos/{record.id}/{route}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        (path := library.parent / f"{route}.jpg").write_bytes(image.content)
        with Image.open(path) as opened:
            assert max(opened.size) <= size
    assert rest.get("/photos/999999").status_code == 404
    for hostile in ("..%2F..%2Fetc%2Fpasswd", "-1e9", "1;rm"):
        assert rest.get(f"/photos/{hostile}/original").status_code in (400, 404)


def test_the_screen_rendition_is_upright_and_screen_sized(tmp_path, tiny_mllama):
    from indexer import IndexStore, build_index

    from search_app.engine import SearchEngine

    photos = tmp_path / "photos"
    photos.mkdir()
    big = Image.new("RGB", (3000, 2000), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: shown rotated 90°, i.e. 2000 wide × 3000 high
    big.save(photos / "turned.jpg", exif=exif.tobytes())
    build_index([photos], tmp_path / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama)
    try:
        with TestClient(mounted(RestAPI(engine)), base_url="http://127.0.0.1/api/v1") as client:
            image_id = engine.store.ids()[0]
            screen = client.get(f"/photos/{image_id}/screen")
            assert screen.status_code == 200
            (tmp_path / "screen.jpg").write_bytes(screen.content)
            with Image.open(tmp_path / "screen.jpg") as opened:
                assert opened.size == (1067, 1600)
    finally:
        engine.close()


def test_files_outside_the_indexed_folders_are_never_served(tmp_path, tiny_mllama, outside_dir):
    from indexer import IndexStore, build_index

    from search_app.engine import SearchEngine

    photos = tmp_path / "photos"
    for seed, name in enumerate(("a.jpg", "b.jpg")):
        make_photo(photos / name, seed, None)
    build_index([photos], tmp_path / "index", tiny_mllama, show_progress=False)
    engine = SearchEngine(IndexStore.open(tmp_path / "index"), tiny_mllama)
    try:
        records = {record.relpath: record for record in engine.store.records(engine.store.ids())}
        (photos / "b.jpg").unlink()
        (photos / "b.jpg").symlink_to(outside_dir / "secret.jpg")  # swapped for a link out of the library
        with TestClient(mounted(RestAPI(engine)), base_url="http://127.0.0.1/api/v1") as client:
            for route in ("original", "preview", "screen"):
                answer = client.get(f"/photos/{records['b.jpg'].id}/{route}")
                assert answer.status_code == 403, route
                assert "outside the indexed folders" in answer.json()["error"]
                assert client.get(f"/photos/{records['a.jpg'].id}/{route}").status_code == 200
    finally:
        engine.close()


@pytest.fixture
def albums(engine):
    """The session index's albums, left as they were found."""
    assert engine.albums.names() == []
    yield engine.albums
    for name in engine.albums.names():
        engine.albums.delete(name)


def test_albums_and_similar_groups(rest, engine, albums):
    albums.save("Beach", {"text": "beach"}, {"folder": "2023"})
    listed = rest.get("/albums").json()
    assert [album["name"] for album in listed["albums"]] == ["Beach"]
    opened = rest.get("/albums/Beach", params={"k": 5}).json()
    assert opened["album"]["name"] == "Beach" and all(r["relpath"].startswith("2023/") for r in opened["results"])
    missing = rest.get("/albums/Nowhere")
    assert missing.status_code == 400 and "Nowhere" in missing.json()["error"]
    saved = rest.put("/albums/Dated", params={"text": "photos", "date_from": "2024-01-01", "k": 7})
    assert saved.status_code == 200 and saved.json()["options"]["date_from"] == "2024-01-01"
    assert (
        saved.json()
        == Answers(engine).list_albums()["albums"][
            [a["name"] for a in Answers(engine).list_albums()["albums"]].index("Dated")
        ]
    )
    bad = rest.put("/albums/Dated", params={"text": "photos", "date_from": "soon"})
    assert bad.status_code == 400 and "date_from 'soon' is not a date" in bad.json()["error"]
    photo = engine.store.ids()[0]
    pinned = rest.post(f"/albums/Dated/photos/{photo}", params={"action": "pin"})
    assert pinned.status_code == 200 and pinned.json()["pinned"] == [photo]
    assert rest.get("/albums/Dated").json()["results"][0]["image_id"] == photo
    assert rest.post(f"/albums/Dated/photos/{photo}", params={"action": "burn"}).json()["error"] == (
        "action must be one of pin, remove, unpin, got 'burn'"
    )
    assert rest.post(f"/albums/Dated/photos/{photo}", params={"action": "unpin"}).json()["pinned"] == []
    groups = rest.get("/similar-groups").json()
    assert groups == Answers(engine).similar_groups()
    assert rest.get("/similar-groups", params={"threshold": "high"}).status_code == 400


def test_health_and_info(rest, engine):
    assert rest.get("/health").json() == {"status": "ok"}
    info = rest.get("/info").json()
    assert info["images"] == engine.stats()["images"] and info["limits"]["max_k"] == 200


def test_slots_refuse_at_once_when_full_and_after_the_longest_wait():
    async def scenario():
        slots = Slots(running=1, queue=1, max_wait=0.2)
        assert slots.admit() and slots.admit() and not slots.admit()  # 1 running + 1 waiting, the third refused
        async with slots.slot():
            started = time.monotonic()
            with pytest.raises(Busy, match="busy"):
                async with slots.slot():
                    pass
            assert 0.15 < time.monotonic() - started < 2
        async with slots.slot():  # freed: the next one runs
            pass

    asyncio.run(scenario())


# -- tokens ------------------------------------------------------------------------------------------------------
def test_tokens_are_stored_hashed_and_revoked(tmp_path):
    users = tmp_path / "conf" / "users"
    path = tokens_file_for(users)
    assert path == tmp_path / "conf" / "users.tokens"
    token = add_token(path, "frame")
    assert token.startswith("mme5_") and len(token) > 40
    assert token not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    store = TokenStore(path)
    assert store.check(token) == "frame" and store.check(token + "x") is None and store.check("") is None
    second = add_token(path, "alice")
    assert store.check(second) == "alice"  # the file is re-read when it changes
    replaced = add_token(path, "frame")
    assert store.check(token) is None and store.check(replaced) == "frame"
    revoke_token(path, "frame")
    assert store.check(replaced) is None and store.check(second) == "alice"
    with pytest.raises(AuthError, match="no token named 'frame'"):
        revoke_token(path, "frame")
    with pytest.raises(AuthError, match="a token name is"):
        add_token(path, "a b")


def test_a_broken_tokens_file_names_its_line_and_refuses_every_token(tmp_path):
    path = tmp_path / "users.tokens"
    token = add_token(path, "frame")
    store = TokenStore(path)
    path.write_text(path.read_text() + "eve:plaintext-token\n")
    assert store.check(token) is None  # fail closed until fixed
    with pytest.raises(AuthError, match=r"users.tokens, line 3: expected NAME:sha256\$SALT\$DIGEST"):
        read_tokens(path)
    with pytest.raises(AuthError, match="line 3"):
        TokenStore(path)


def test_token_cli_prints_the_token_once_and_revokes(tmp_path, capsys):
    from search_app.__main__ import main

    users = tmp_path / "users"
    assert main(["add-token", "frame", "--auth-file", str(users)]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert TokenStore(tokens_file_for(users)).check(token) == "frame" and token not in err
    assert main(["revoke-token", "frame", "--auth-file", str(users)]) == 0
    assert TokenStore(tokens_file_for(users)).check(token) is None
    assert main(["revoke-token", "frame", "--auth-file", str(users)]) == 1
    assert "no token named 'frame'" in capsys.readouterr().err


def test_with_tokens_every_route_but_health_and_schema_needs_one(engine, tmp_path):
    path = tmp_path / "users.tokens"
    token = add_token(path, "frame")
    api = RestAPI(engine, TokenStore(path))
    api.throttle.base_delay = 0.3
    with TestClient(mounted(api), base_url="http://127.0.0.1/api/v1") as client:
        assert client.get("/health").status_code == 200 and client.get("/openapi.json").status_code == 200
        for route in ("/info", "/search/text?text=x", "/photos/1", "/photos/1/original", "/albums", "/similar-groups"):
            refused = client.get(route)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert "add-token" in refused.json()["error"]
        assert client.post("/search/image", files={"image": ("a.jpg", b"x")}).status_code == 401
        good = {"Authorization": f"Bearer {token}"}
        assert client.get("/search/text", params={"text": "x"}, headers=good).status_code == 200
        assert client.get("/info", headers={"Authorization": f"Basic {token}"}).status_code == 401
        for _ in range(5):  # five wrong tokens are free ...
            started = time.monotonic()
            assert client.get("/info", headers={"Authorization": "Bearer mme5_guess"}).status_code == 401
            assert time.monotonic() - started < 0.3
        started = time.monotonic()  # ... the sixth waits, like a sixth wrong password
        wrong = client.get("/info", headers={"Authorization": "Bearer mme5_guess"})
        assert wrong.status_code == 401 and time.monotonic() - started >= 0.3
        assert "mme5_guess" not in wrong.text and token not in wrong.text
        assert client.get("/info", headers=good).status_code == 200  # a good one resets the count
        assert client.get("/info", headers={"Authorization": "Bearer mme5_guess"}).elapsed.total_seconds() < 0.3
        revoke_token(path, "frame")
        assert client.get("/info", headers=good).status_code == 401


def test_the_gradio_api_still_answers_bad_input_as_a_message(engine):
    import gradio as gr

    from search_app.api import SearchAPI

    with pytest.raises(gr.Error, match="k must be a whole number"):
        SearchAPI(engine).search_text("beach", k=0)
    assert SearchAPI(engine).search_text.__doc__ == Answers.search_text.__doc__
