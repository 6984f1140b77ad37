"""The results on a map: Leaflet (vendored in search_app/static/leaflet, BSD-2-Clause) served by the app itself.

The page's "Map" button opens a map of the results that have a GPS position (a marker each; a click opens the result
as a click on its thumbnail does), the typed radius as a circle and the map-area filter (``bbox``) as a rectangle.
"Draw area" (drag a rectangle) and "Search this area" (the visible map) set the ``bbox`` filter, which the page shows
as a removable chip and keeps in the URL. Tiles come from ``--map-tiles`` / MME5_MAP_TILES (default OpenStreetMap;
``none``: no tiles); where they cannot load (offline), the map says so and shows the markers on a plain background.

The map's script is search_app/static/map.js; ``static_route`` serves that folder (only the files it holds, by an
allow-list made at start: no path from a request is ever resolved on disk), behind the Host guard like every route,
and behind the login when the app has one.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ROUTE = "/map-static"  # the static folder's URL path (the page refers to it relatively: works behind a prefix too)
DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
TILES_FAILED = "Map tiles could not load; positions are still shown."
NO_TILES = "Map tiles are off (--map-tiles none); positions are still shown."


def static_files(folder: Path = STATIC) -> dict[str, Path]:
    """URL path (relative, '/'-separated) -> file, for every servable file under ``folder`` (no links followed)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix in TYPES and path.is_file() and not path.is_symlink():
            files[path.relative_to(folder).as_posix()] = path
    return files


def static_route(folder: Path = STATIC):
    """The Starlette route serving ``folder``'s files at ROUTE/NAME; 404 for any other name, 401 without the login."""
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    files = static_files(folder)

    async def serve(request):
        app = request.app
        if getattr(app, "auth", None) is not None or getattr(app, "auth_dependency", None) is not None:
            if await _user(request) is None:
                return PlainTextResponse("Log in first: the map's files are served to logged-in users.", 401)
        name = request.path_params.get("name", "")
        path = files.get(name)
        if path is None:
            return PlainTextResponse(f"No map file named {name[:80]!r}.", 404)
        return Response(
            path.read_bytes(),
            media_type=TYPES[path.suffix],
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    return Route(ROUTE + "/{name:path}", serve, methods=["GET", "HEAD"])


async def _user(request):
    """The logged-in user as Gradio knows them (its login cookie), or None."""
    import inspect

    app = request.app
    if getattr(app, "auth_dependency", None) is not None:
        user = app.auth_dependency(request)
        return await user if inspect.isawaitable(user) else user
    cookie = getattr(app, "cookie_id", "")
    token = request.cookies.get(f"access-token-{cookie}") or request.cookies.get(f"access-token-unsecure-{cookie}")
    return getattr(app, "tokens", {}).get(token)


def panel_html(tiles: str | None) -> str:
    """The map's place on the page: the Map button, and (hidden until pressed) the map with its tools."""
    tiles = tiles or DEFAULT_TILES
    if tiles == "none":
        attribution, note = "", NO_TILES
    elif tiles == DEFAULT_TILES:
        attribution, note = OSM_ATTRIBUTION, ""
    else:
        from urllib.parse import urlsplit

        attribution, note = f"Map tiles: {html.escape(urlsplit(tiles).netloc)}", ""
    data = html.escape(json.dumps({"tiles": tiles, "attribution": attribution, "failed": TILES_FAILED}), quote=True)
    return (
        f'<div id="map_box" data-map="{data}">'
        '<button type="button" id="map_toggle" class="map-button" aria-expanded="false" '
        'aria-controls="map_panel">🗺 Map</button>'
        '<div id="map_panel" hidden>'
        '<div class="map-tools" role="group" aria-label="Map area">'
        '<button type="button" id="map_draw" class="map-button" aria-pressed="false">Draw area</button>'
        '<button type="button" id="map_search_area" class="map-button">Search this area</button>'
        '<span id="map_hint" class="map-hint">Drag on the map to draw the area.</span></div>'
        f'<p id="map_note" class="map-note"{"" if note else " hidden"}>{html.escape(note)}</p>'
        '<div id="map" role="region" aria-label="Map of the results with a GPS position"></div>'
        '<p id="map_count" class="map-hint" aria-live="polite"></p>'
        "</div></div>"
    )


def map_data(results, options, captions) -> str:
    """What the map shows (JSON for the page's script): a marker per result with a position, by gallery index, and
    the ``bbox`` and ``near`` filters in effect. ``captions``: the results' captions, in gallery order."""
    markers = [
        {"i": index, "lat": result.latitude, "lon": result.longitude, "caption": caption}
        for index, (result, caption) in enumerate(zip(results, captions))
        if result.latitude is not None and result.longitude is not None
    ]
    bbox = getattr(options, "bbox", None) if options is not None else None
    near = getattr(options, "near", None) if options is not None else None
    return json.dumps(
        {
            "markers": markers,
            "count": len(results),
            "bbox": list(bbox) if bbox else None,
            "near": list(near) if near else None,
        },
        ensure_ascii=False,
    )


CSS = """
#map_box .map-button { border: 1px solid #71717a; border-radius: 6px; padding: 4px 12px; min-height: 36px;
  background: #fff; color: #18181b; cursor: pointer; }
#map_box .map-button[aria-pressed="true"], #map_box .map-button[aria-expanded="true"] { background: #1d4ed8;
  color: #fff; border-color: #1d4ed8; }
#map_panel { margin-top: 6px; }
#map_panel .map-tools { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 6px; }
#map_panel .map-hint { font-size: 0.9em; color: #3f3f46; }
#map_hint { display: none; }
#map_panel.drawing #map_hint { display: inline; }
#map_note { margin: 0 0 6px; padding: 4px 8px; background: #fef9c3; color: #422006; border-radius: 4px; }
#map { height: min(60vh, 480px); width: 100%; border-radius: 6px; border: 1px solid #d4d4d8; }
#map_panel.drawing #map { cursor: crosshair; touch-action: none; }  /* a finger draws instead of scrolling */
/* No tiles (offline, or --map-tiles none): a plain light background with a graticule, markers on top. */
#map.no-tiles { background-color: #f4f4f5; background-image: linear-gradient(#d4d4d8 1px, transparent 1px),
  linear-gradient(90deg, #d4d4d8 1px, transparent 1px); background-size: 64px 64px; }
#map.no-tiles .leaflet-tile-pane { display: none; }
#map .leaflet-control-attribution a { color: #1e40af; }
"""
