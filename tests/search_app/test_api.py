"""The real app in a subprocess (indexing the library on first start), queried over HTTP with gradio_client."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from .conftest import LIBRARY

pytestmark = pytest.mark.server  # starts the app in a subprocess

UNIQUE = len(LIBRARY)


@pytest.fixture(scope="module")
def client(served_app):
    url, _ = served_app
    return Client(url, verbose=False)


def relpaths(payload):
    return [result["relpath"] for result in payload["results"]]


def test_first_start_indexed_the_photo_folder(served_app):
    from indexer import IndexStore

    _, index = served_app
    store = IndexStore.open(index)
    try:
        assert store.count == UNIQUE + 1
    finally:
        store.close()


def test_the_three_named_endpoints_are_published(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/search_text", "/search_image", "/search_composed"} <= set(endpoints)
    parameters = [p["parameter_name"] for p in endpoints["/search_composed"]["parameters"]]
    assert parameters[:3] == ["image", "text", "k"]


def test_search_text_returns_json_results_and_pages(client):
    first = client.predict(text="una foto de la playa", k=4, api_name="/search_text")
    assert len(first["results"]) == 4 and first["next_offset"] == 4 and first["total_indexed"] == UNIQUE + 1
    result = first["results"][0]
    assert set(result) >= {"image_path", "relpath", "score", "size", "taken_at", "image_id", "content_hash"}
    assert isinstance(result["score"], float) and result["image_path"].endswith(result["relpath"])
    second = client.predict(text="una foto de la playa", k=4, offset=4, api_name="/search_text")
    everything = client.predict(text="una foto de la playa", k=50, api_name="/search_text")
    assert [r["image_id"] for r in first["results"] + second["results"]] == [
        r["image_id"] for r in everything["results"][:8]
    ]


def test_search_text_filters_and_sorts(client):
    payload = client.predict(text="写真", k=50, folder="2023", sort="date_asc", api_name="/search_text")
    assert relpaths(payload) == ["2023/beach/red.jpg", "2023/beach/orange.jpg", "2023/city/blue.jpg"]
    assert payload["results"][0]["taken_at"] == "2023-07-14T10:00:00"
    dated = client.predict(text="x", date_from="2024-03-01", date_to="2024-03-01", api_name="/search_text")
    assert sorted(relpaths(dated)) == ["2024/green.jpg", "2024/yellow.jpg"]
    copies = client.predict(text="x", k=50, collapse_duplicates=False, api_name="/search_text")
    assert len(copies["results"]) == UNIQUE + 1


def test_search_image_and_composed(client, library):
    photo = handle_file(str(library / "2024/green.jpg"))
    similar = client.predict(image=photo, k=3, api_name="/search_image")
    assert similar["results"][0]["relpath"] == "2024/green.jpg"
    composed = client.predict(image=photo, text="à la plage", k=3, folder="misc", api_name="/search_composed")
    assert len(composed["results"]) == 3 and all(r.startswith("misc/") for r in relpaths(composed))


@pytest.mark.parametrize(
    "call, message",
    [
        ({"text": "", "api_name": "/search_text"}, "query text is empty"),
        ({"text": "x", "k": 0, "api_name": "/search_text"}, "k must be"),
        ({"text": "x", "sort": "random", "api_name": "/search_text"}, "random is not in the list of choices"),
        ({"text": "x", "date_from": "tomorrow", "api_name": "/search_text"}, "is not a date"),
        ({"image": None, "api_name": "/search_image"}, "No image given"),
    ],
)
def test_bad_inputs_get_a_clear_error(client, call, message):
    with pytest.raises(Exception, match=message):
        client.predict(**call)


def test_unreadable_empty_and_oversized_uploads_are_refused(client, tmp_path):
    garbage = tmp_path / "holiday.jpg"
    garbage.write_bytes(b"this is not a picture")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 9_000)).save(huge)  # 90 MP but a small file
    with pytest.raises(Exception, match="holiday.jpg is not an image"):
        client.predict(image=handle_file(str(garbage)), api_name="/search_image")
    with pytest.raises(Exception, match="empty"):
        client.predict(image=handle_file(str(empty)), text="x", api_name="/search_composed")
    with pytest.raises(Exception, match="limit is 80 MP"):
        client.predict(image=handle_file(str(huge)), api_name="/search_image")


def test_twenty_concurrent_clients_all_succeed(served_app):
    url, _ = served_app
    queries = [f"photo number {n} · фото {n} · 写真 {n}" for n in range(20)]

    def ask(query):
        return Client(url, verbose=False).predict(text=query, k=5, api_name="/search_text")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(ask, queries))
    assert len(answers) == 20 and all(len(answer["results"]) == 5 for answer in answers)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "{library}/2024/green.jpg",
        "{library}/../outside/secret.txt",
        "{repo}/app.py",
        "{library}/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_files_are_served_only_from_the_gradio_cache(served_app, library, path):
    url, _ = served_app
    from .conftest import REPO

    target = path.format(library=library, repo=REPO)
    response = httpx.get(f"{url}gradio_api/file={target}", timeout=10)
    assert response.status_code in (403, 404), (target, response.status_code)
    assert b"root:" not in response.content


def test_uploads_over_the_size_limit_are_rejected_before_any_work(client, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + b"\0" * (21 * 1024 * 1024))
    with pytest.raises(Exception, match="exceeds the maximum file size of 20971520 bytes"):
        client.predict(image=handle_file(str(big)), api_name="/search_image")
    server = httpx.post(
        f"{client.src.rstrip('/')}/gradio_api/upload", files={"files": ("big.jpg", big.read_bytes())}, timeout=60
    )
    assert server.status_code == 413  # the server enforces it too, not only the polite client


def test_new_options_are_published_in_every_endpoint(client):
    from search_app.filters import FILTERS

    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/search_text", "/search_image", "/search_composed"):
        parameters = [p["parameter_name"] for p in endpoints[name]["parameters"]]
        assert {item.name for item in FILTERS} | {"without", "strong_only", "dates_in_text"} <= set(parameters)


def test_dates_in_the_text_without_and_strong_matches_over_http(client):
    july = client.predict(text="Strand im Juli 2023", k=50, api_name="/search_text")
    assert sorted(relpaths(july)) == ["2023/beach/orange.jpg", "2023/beach/red.jpg"]
    assert july["query_dates"] == {"date_from": "2023-07-01", "date_to": "2023-07-31", "matched": "im Juli 2023"}
    assert july["embedded_text"] == "Strand"
    whole = client.predict(text="Strand im Juli 2023", k=50, dates_in_text=False, api_name="/search_text")
    assert "query_dates" not in whole and len(whole["results"]) == UNIQUE
    plain = client.predict(text="a red photo", k=50, api_name="/search_text")
    pushed = client.predict(text="a red photo", without="a blue photo, грузовик", k=50, api_name="/search_text")
    assert [r["image_id"] for r in pushed["results"]] != [r["image_id"] for r in plain["results"]]
    strong = client.predict(text="a red photo", k=50, strong_only=True, api_name="/search_text")
    counts = strong["strong_matches"]
    assert counts["strong"] == len(strong["results"]) and counts["strong"] + counts["hidden"] == UNIQUE + 1
    assert all(r["score"] >= counts["cutoff"] for r in strong["results"])
    unknown = client.predict(text="x", folder="Holidays", api_name="/search_text")
    assert unknown["results"] == [] and "No folder called “Holidays”" in unknown["notes"][0]
    upper = client.predict(text="x", k=50, folder="2023/BEACH", file_type="jpeg", api_name="/search_text")
    assert sorted(relpaths(upper)) == ["2023/beach/orange.jpg", "2023/beach/red.jpg"]


def test_album_and_similar_endpoints_are_published_beside_the_search_ones(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/list_albums", "/save_album", "/open_album", "/album_photo", "/similar_groups"} <= set(endpoints)
    assert [p["parameter_name"] for p in endpoints["/save_album"]["parameters"]][:3] == ["name", "text", "k"]
    assert [p["parameter_name"] for p in endpoints["/search_text"]["parameters"]][:2] == ["text", "k"]


def test_albums_over_http_save_open_pin_and_remove(client):
    saved = client.predict(name="Beach  2023", text="la plage", folder="2023", api_name="/save_album")
    assert saved["name"] == "Beach 2023" and saved["options"] == {"folder": "2023"}
    assert "Beach 2023" in [album["name"] for album in client.predict(api_name="/list_albums")["albums"]]
    opened = client.predict(name="Beach 2023", api_name="/open_album")
    assert sorted(relpaths(opened)) == ["2023/beach/orange.jpg", "2023/beach/red.jpg", "2023/city/blue.jpg"]
    ids = {r["relpath"]: r["image_id"] for r in client.predict(text="x", k=20, api_name="/search_text")["results"]}
    client.predict(name="Beach 2023", image_id=ids["misc/gray.jpg"], action="pin", api_name="/album_photo")
    album = client.predict(
        name="Beach 2023", image_id=ids["2023/city/blue.jpg"], action="remove", api_name="/album_photo"
    )
    assert album["pinned"] == [ids["misc/gray.jpg"]] and album["removed"] == [ids["2023/city/blue.jpg"]]
    opened = client.predict(name="Beach 2023", api_name="/open_album")
    assert relpaths(opened)[0] == "misc/gray.jpg"
    assert sorted(relpaths(opened)) == ["2023/beach/orange.jpg", "2023/beach/red.jpg", "misc/gray.jpg"]
    client.predict(name="Beach 2023", image_id=ids["2023/city/blue.jpg"], action="unpin", api_name="/album_photo")
    assert "2023/city/blue.jpg" in relpaths(client.predict(name="Beach 2023", api_name="/open_album"))


@pytest.mark.parametrize(
    "call, message",
    [
        (dict(name="No such album", api_name="/open_album"), "no album called “No such album”"),
        (dict(name="x", text="la plage", date_from="not a date", api_name="/save_album"), "is not a date"),
        (dict(name=" ", text="la plage", api_name="/save_album"), "needs a name"),
        (dict(name="Beach 2023", image_id=99999, action="pin", api_name="/album_photo"), "no indexed photo has id"),
        (dict(threshold=1.5, api_name="/similar_groups"), "threshold must be from 0.8 to 1, got 1.5"),
        # search_app/limits.py: over-long names, texts and filter values are refused, not stored and echoed back
        (
            dict(name="n" * 300, text="la plage", api_name="/save_album"),
            r"album name is too long \(300 characters; "
            r"at most 200\)",
        ),
        (dict(name="Long", text="t" * 100_000, api_name="/save_album"), r"query text is too long \(100,000 characters"),
        (dict(name="Long", text="la plage", camera="c" * 100_000, api_name="/save_album"), "camera filter is too long"),
        (dict(name="Long", text="la plage", folder="f/" * 50_000, api_name="/save_album"), "folder filter is too long"),
        (dict(name="n" * 100_000, api_name="/open_album"), "album name is too long"),
        (
            dict(text="x", place="p" * 100_000, api_name="/search_text"),
            r"place filter is too long \(100,000 characters; "
            r"at most 500\)",
        ),
        (dict(text="x", date_from="2" * 100_000, api_name="/search_text"), "date_from filter is too long"),
        (dict(text="x", without="w" * 100_000, api_name="/search_text"), "without text is too long"),
    ],
)
def test_bad_album_and_group_requests_get_a_clear_error(client, call, message):
    with pytest.raises(Exception, match=message):
        client.predict(**call)


def test_similar_groups_over_http_default_to_the_models_threshold(client):
    from mme5.registry import BACKBONES

    payload = client.predict(api_name="/similar_groups")
    assert payload["threshold"] == BACKBONES["mllama"].similar_threshold
    # The tiny random model scores every pair above 0.95, so the whole library is one group.
    members = [m["relpath"] for m in payload["groups"][0]["members"]]
    assert len(payload["groups"]) == 1 and {"2023/beach/red.jpg", "copies/red-copy.jpg"} <= set(members)
    assert payload["groups"][0]["best"] == payload["groups"][0]["members"][0]["image_path"]
    assert client.predict(threshold=1.0, api_name="/similar_groups")["threshold"] == 1.0
