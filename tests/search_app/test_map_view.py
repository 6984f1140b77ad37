"""The map's server side: the tile setting, the static route (only its own files, behind the login), the map data."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mme5.settings import Settings, SettingsError, tile_url
from search_app import map_view
from search_app.geo import BBox, Near


def test_the_tile_setting_takes_a_template_or_none_and_names_what_is_wrong():
    assert (
        tile_url("MME5_MAP_TILES", "https://tiles.example/{z}/{x}/{y}.png") == "https://tiles.example/{z}/{x}/{y}.png"
    )
    assert tile_url("MME5_MAP_TILES", "None") == "none"
    # the variable is what this test is about
    assert (
        Settings.from_env({"MME5_MAP_TILES": "http://10.0.0.2/t/{z}/{x}/{y}"}).map_tiles
        == "http://10.0.0.2/t/{z}/{x}/{y}"
    )
    for bad in (
        "ftp://tiles.example/{z}/{x}/{y}",
        "https://tiles.example/{z}/{x}.png",
        "tiles/{z}/{x}/{y}",
        'https://x.example/{z}/{x}/{y}"><script>',
        "javascript:alert(1)//{z}{x}{y}",
    ):
        with pytest.raises(SettingsError, match="MME5_MAP_TILES=.*expected a tile URL template"):
            tile_url("MME5_MAP_TILES", bad)


def test_the_page_names_the_tiles_and_escapes_them():
    assert "tile.openstreetmap.org" in map_view.panel_html(None) and "OpenStreetMap" in map_view.panel_html(None)
    offline = map_view.panel_html("none")
    assert '"tiles": "none"' in offline.replace("&quot;", '"') and map_view.NO_TILES in offline
    assert '<p id="map_note" class="map-note" hidden>' in map_view.panel_html(None)


def test_the_map_data_has_a_marker_per_result_with_a_position_by_gallery_index():
    results = [
        SimpleNamespace(latitude=38.7, longitude=-9.1),
        SimpleNamespace(latitude=None, longitude=None),
        SimpleNamespace(latitude=35.7, longitude=139.7),
    ]
    options = SimpleNamespace(bbox=BBox(-10, 38, -9, 39), near=Near(38.7, -9.1, 5))
    data = json.loads(map_view.map_data(results, options, ["a.jpg", "b.jpg", "<c>.jpg"]))
    assert data["markers"] == [
        {"i": 0, "lat": 38.7, "lon": -9.1, "caption": "a.jpg"},
        {"i": 2, "lat": 35.7, "lon": 139.7, "caption": "<c>.jpg"},
    ]
    assert data["count"] == 3 and data["bbox"] == [-10, 38, -9, 39] and data["near"] == [38.7, -9.1, 5]
    assert json.loads(map_view.map_data([], None, []))["bbox"] is None


def test_the_static_folder_holds_leaflet_and_its_license_and_nothing_else_is_served():
    files = map_view.static_files()
    assert {"map.js", "leaflet/leaflet.js", "leaflet/leaflet.css", "leaflet/images/marker-icon.png"} <= set(files)
    assert not any(name.endswith(".py") for name in files)
    assert "BSD 2-Clause" in (map_view.STATIC / "leaflet" / "LICENSE").read_text()


def _client(auth=None, tokens=None):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    app = Starlette(routes=[map_view.static_route()])
    app.auth, app.auth_dependency, app.tokens, app.cookie_id = auth, None, tokens or {}, "abc"
    return TestClient(app)


@pytest.mark.parametrize(
    "path",
    [
        "/map-static/../map_view.py",
        "/map-static/%2e%2e/map_view.py",
        "/map-static/leaflet/%2e%2e/%2e%2e/ui.py",
        "/map-static/..%2fmap_view.py",
        "/map-static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/map-static//etc/passwd",
        "/map-static/leaflet/../../../pyproject.toml",
        "/map-static/%252e%252e/map_view.py",
        "/map-static/leaflet",
        "/map-static/leaflet/LICENSE",
        "/map-static/..\\map_view.py",
        "/map-static/leaflet/leaflet.js%00.py",
    ],
)
def test_the_static_route_refuses_any_other_path(path):
    status, body = _raw(map_view.static_route(), path)
    assert status == 404, (path, status)
    assert b"import" not in body and b"root:" not in body and b"[project]" not in body


def _raw(route, path: str) -> tuple[int, bytes]:
    """``path`` sent to the app as a hostile client writes it: no client tidies its dots or escapes away (the server
    decodes %XX into the path, as uvicorn does)."""
    import asyncio
    from urllib.parse import unquote

    from starlette.applications import Starlette

    app = Starlette(routes=[route])
    app.auth = app.auth_dependency = None
    messages = []

    async def run():
        scope = {
            "type": "http",
            "method": "GET",
            "path": unquote(path),
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"testserver")],
            "root_path": "",
            "scheme": "http",
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 1),
            "http_version": "1.1",
            "app": app,
        }

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            messages.append(message)

        await app(scope, receive, send)

    asyncio.run(run())
    status = next(message["status"] for message in messages if message["type"] == "http.response.start")
    return status, b"".join(message.get("body", b"") for message in messages if message["type"] == "http.response.body")


def test_the_static_route_serves_its_files_and_needs_the_login_when_the_app_has_one():
    plain = _client().get("/map-static/leaflet/leaflet.js")
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/javascript")
    assert plain.content == (map_view.STATIC / "leaflet" / "leaflet.js").read_bytes()
    guarded = _client(auth=object(), tokens={"good": "alice"})
    refused = guarded.get("/map-static/map.js")
    assert refused.status_code == 401 and "Log in" in refused.text
    assert guarded.get("/map-static/map.js", cookies={"access-token-abc": "wrong"}).status_code == 401
    assert guarded.get("/map-static/map.js", cookies={"access-token-abc": "good"}).status_code == 200


def test_every_served_file_and_the_license_are_package_data():
    import tomllib
    from pathlib import Path

    root = Path(map_view.__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["search_app"]
    shipped = [path.relative_to(root / "search_app").as_posix() for path in map_view.static_files().values()]
    shipped.append("static/leaflet/LICENSE")
    assert all(any(Path(name).match(pattern) for pattern in patterns) for name in shipped), (patterns, shipped)


def test_map_tiles_come_from_the_flag_or_the_setting_and_reach_the_page(monkeypatch, capsys):
    from search_app.__main__ import build_parser

    monkeypatch.delenv("MME5_MAP_TILES", raising=False)
    assert build_parser().parse_args([]).map_tiles is None  # the page then uses OpenStreetMap's
    assert build_parser().parse_args(["--map-tiles", "none"]).map_tiles == "none"
    monkeypatch.setenv("MME5_MAP_TILES", "https://t.example/{z}/{x}/{y}.png")  # the variable is what this is about
    assert build_parser().parse_args([]).map_tiles == "https://t.example/{z}/{x}/{y}.png"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--map-tiles", "https://t.example/tiles.png"])
    assert "--map-tiles: 'https://t.example/tiles.png': expected a tile URL template" in capsys.readouterr().err
    assert "t.example" in map_view.panel_html("https://t.example/{z}/{x}/{y}.png")
