"""The REST API: plain HTTP + JSON under /api/v1 on the app's own server and port, described by OpenAPI.

For programs (photo frames, dashboards, scripts) that want neither Gradio's queue protocol nor its client:

    curl 'http://127.0.0.1:7860/api/v1/search/text?text=un+perro+en+la+playa&k=5'
    curl -F image=@cat.jpg -F text='but at night' http://127.0.0.1:7860/api/v1/search/composed
    curl -H "Authorization: Bearer $TOKEN" http://HOST:7860/api/v1/photos/42/screen -o photo.jpg

The search options and the answer JSON are the Gradio API's (``api.Answers``, options from ``filters.FILTERS`` and
``api.OPTIONS``): one definition, so a new filter appears here too. Files are served by photo id only, through the
engine's path guard. With a login (users file or MME5_AUTH) every route but /health and /openapi.json needs a token
from ``python -m search_app add-token NAME`` (tokens.py); wrong tokens are slowed per client like wrong passwords.
Bounds: request size, query length, results per page (the engine's), and requests at once: ``concurrency`` run, up to
``queue`` wait at most MAX_WAIT_S, more answer 503 with Retry-After at once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import shutil
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, FastAPI, File, Form, Query, Security, UploadFile
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Mount

from indexer.files import printable
from mme5.images import PREVIEW_SIZE

from .albums import ALBUM_K
from .api import OPTIONS, PIN_ACTIONS, Answers, APIError, parameters
from .auth import LoginThrottle, _Record
from .filters import FILTERS
from .limits import (
    API_QUEUE,
    MAX_BODY_BYTES,
    MAX_K,
    MAX_QUERY_CHARS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    MAX_WAIT_S,
    RETRY_AFTER_S,
    SCREEN_SIZE,
)
from .paths import PathNotAllowedError
from .private import cache_home, private_dir
from .results import result_of
from .thumbnails import ThumbnailCache
from .tokens import TokenStore

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
OPEN_PATHS = ("/health", "/openapi.json")  # answered without a token (no photo, no path, no index fact)


class Busy(Exception):
    """Every slot is taken and the queue is full (or the wait ran out): 503 with Retry-After."""


class Slots:
    """``running`` requests work at once; up to ``queue`` more are admitted and wait; the rest are refused at once."""

    def __init__(self, running: int, queue: int, max_wait: float = MAX_WAIT_S):
        self.running, self.queue, self.max_wait = max(1, running), max(0, queue), max_wait
        self.admitted = 0
        self._semaphore: asyncio.Semaphore | None = None

    def admit(self) -> bool:
        if self.admitted >= self.running + self.queue:
            return False
        self.admitted += 1
        return True

    def leave(self) -> None:
        self.admitted -= 1

    @asynccontextmanager
    async def slot(self):
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.running)
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self.max_wait)
        except TimeoutError:
            raise Busy(
                f"The server is busy: no search slot came free within {self.max_wait:g} s. "
                f"Try again in {RETRY_AFTER_S} s."
            ) from None
        try:
            yield
        finally:
            self._semaphore.release()


def _answer(status: int, error: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status, headers=headers)


class Gate:
    """ASGI middleware of the REST app, before any body is read: the token (slowed per client after wrong ones),
    then admission (503 + Retry-After when full), then the body size (413)."""

    def __init__(
        self, app, tokens: TokenStore | None, slots: Slots, throttle: LoginThrottle, max_body: int = MAX_BODY_BYTES
    ):
        self.app, self.tokens, self.slots, self.throttle, self.max_body = app, tokens, slots, throttle, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _local_path(scope) in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if self.tokens is not None:
            refusal = await self._authenticate(scope)
            if refusal is not None:
                return await refusal(scope, receive, send)
        if not self.slots.admit():
            busy = _answer(
                503,
                f"The server is busy ({self.slots.running} running, {self.slots.queue} waiting): "
                f"try again in {RETRY_AFTER_S} s.",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
            return await busy(scope, receive, send)
        left = False

        async def leave_when_answered(message):  # the client may send its next request before the app returns
            nonlocal left
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body") and not left:
                left = True
                self.slots.leave()

        try:
            await self._limited(scope, receive, leave_when_answered)
        finally:
            if not left:
                left = True
                self.slots.leave()

    async def _authenticate(self, scope):
        """None when the bearer token is good; else the 401 response (never naming or logging the token)."""
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="photo search"'}
        if scheme.lower() != "bearer" or not token.strip():
            return _answer(
                401,
                "This server needs an API token: send the header 'Authorization: Bearer TOKEN' "
                "(its owner makes one with: python -m search_app add-token NAME).",
                challenge,
            )
        throttle = self.throttle
        now = time.monotonic()
        throttle._forget(now)
        record = throttle.clients.setdefault(throttle.client(scope), _Record())
        async with record.lock:
            wait = throttle.delay(record.failures)
            if wait > 0:
                await asyncio.sleep(wait)
            owner = self.tokens.check(token.strip())
            if owner is None:
                record.failures += 1
                record.last = time.monotonic()
                return _answer(
                    401,
                    "The API token was not accepted: it is wrong or was revoked. Make a new one "
                    "with: python -m search_app add-token NAME",
                    challenge,
                )
            record.failures = 0
        scope.setdefault("state", {})["token_name"] = owner
        return None

    async def _limited(self, scope, receive, send):
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_big = _answer(
            413,
            f"The request is larger than {self.max_body // 2**20} MB: upload a photo of at most "
            f"{MAX_UPLOAD_BYTES // 2**20} MB.",
        )
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await too_big(scope, receive, send)
        state = {"seen": 0, "over": False, "answered": False}

        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_body:
                    state["over"] = True
                    raise _TooLarge()
            return message

        async def guarded(message):
            if not state["over"]:
                return await send(message)
            if not state["answered"]:  # whatever the app answered to the cut-off body, the client gets the 413
                state["answered"] = True
                await too_big(scope, receive, send)

        try:
            await self.app(scope, counted, guarded)
        except _TooLarge:
            if not state["answered"]:
                state["answered"] = True
                await too_big(scope, receive, send)


class _TooLarge(Exception):
    pass


def _local_path(scope) -> str:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


# -- the option parameters, from the Gradio API's one definition ------------------------------------------------
HELP = {**{option.name: option.help for option in OPTIONS}, **{item.name: item.help for item in FILTERS}}


def _option_parameters(source) -> list[inspect.Parameter]:
    """Every search option as a FastAPI parameter (``Query`` or ``Form``), typed by its default."""
    params = []
    for name, default, _ in parameters():
        kind = bool if isinstance(default, bool) else int if isinstance(default, int) else str
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=kind,
                default=source(default, description=HELP.get(name, "")),
            )
        )
    return params


def _with_options(leading: list[inspect.Parameter], source) -> Callable:
    """Decorator: the route's signature is ``leading`` plus every option (FastAPI reads ``__signature__``)."""

    def decorate(handler):
        handler.__signature__ = inspect.Signature([*leading, *_option_parameters(source)])
        return handler

    return decorate


def _keyword(name: str, annotation, default) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


TEXT_HELP = f"the query, in any language (at most {MAX_QUERY_CHARS} characters)"
IMAGE_HELP = (
    f"a photo (JPEG, PNG, WebP, HEIC, ...; at most {MAX_UPLOAD_BYTES // 2**20} MB and "
    f"{MAX_UPLOAD_PIXELS // 1_000_000} MP)"
)


class RestAPI:
    """The REST app's routes over one engine; ``tokens`` None = no login (the server is on loopback)."""

    def __init__(
        self,
        engine,
        tokens: TokenStore | None = None,
        concurrency: int = 1,
        queue: int = API_QUEUE,
        trust_forwarded: bool = False,
        max_wait: float = MAX_WAIT_S,
    ):
        self.engine = engine
        self.answers = Answers(engine)
        self.tokens = tokens
        self.slots = Slots(concurrency, queue, max_wait)
        self.throttle = LoginThrottle(None, trust_forwarded=trust_forwarded)
        published = self._published_preview
        self.previews = ThumbnailCache(size=PREVIEW_SIZE, published=published)
        self.screens = ThumbnailCache(size=SCREEN_SIZE, published=published)

    def _published_preview(self, content_hash: str):
        return self.engine.store.preview_file(content_hash)

    async def work(self, fn: Callable, *args, **kwargs) -> Any:
        """``fn`` in a worker thread once a slot is free (the model and image decoding never block the server).

        An answer that is JSON already (``api.Answers`` builds plain dicts) goes out as it is: FastAPI's
        ``jsonable_encoder`` would walk every value of every result again (~2.7 ms a page of 20 on 2 cores).
        Its ``Server-Timing`` header says how long it waited for a slot and how long the work took, so a
        client (or benchmarks/bench_rest.py) can tell the server's search time from the time on the wire."""
        waited = time.perf_counter()
        async with self.slots.slot():
            started = time.perf_counter()
            answer = await run_in_threadpool(fn, *args, **kwargs)
            done = time.perf_counter()
        if not isinstance(answer, dict):
            return answer
        timing = f"queue;dur={(started - waited) * 1000:.2f}, work;dur={(done - started) * 1000:.2f}"
        return JSONResponse(answer, headers={"Server-Timing": timing})

    # -- the app ----------------------------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        app = FastAPI(
            title="mmE5 photo search",
            version="1",
            docs_url=None,
            redoc_url=None,
            openapi_url="/openapi.json",
            description="Search a photo library by text (any language), by image, or by image + text. "
            'Errors answer {"error": sentence}. With a login, send \'Authorization: Bearer '
            "TOKEN' (python -m search_app add-token NAME).",
        )
        app.add_middleware(Gate, tokens=self.tokens, slots=self.slots, throttle=self.throttle)
        for error_type, status in ((APIError, 400), (PathNotAllowedError, 403), (Busy, 503), (HTTPException, None)):
            app.add_exception_handler(error_type, _error_answer(status))
        app.add_exception_handler(RequestValidationError, _validation_error)
        app.include_router(self.open_routes())
        app.include_router(
            self.routes(), dependencies=[Security(HTTPBearer(auto_error=False, description="an API token"))]
        )
        return app

    def mount(self) -> Mount:
        """The REST app at /api/v1, for the Gradio server's routes (``demo.launch(app_kwargs={"routes": [...]})``)."""
        return Mount(PREFIX, app=self.app())

    def open_routes(self) -> APIRouter:
        router = APIRouter()

        @router.get("/health", summary="Is the server up and its index readable? (no token needed)")
        def health():
            try:
                self.engine.stats()
            except ValueError:
                return JSONResponse({"status": "unavailable"}, status_code=503)
            return {"status": "ok"}

        return router

    def routes(self) -> APIRouter:
        router = APIRouter()
        answers = self.answers

        @router.get("/info", summary="The index: photo count, model, indexed folders, and this API's limits")
        async def info():
            stats = await run_in_threadpool(self.engine.stats)
            return {
                **stats,
                "api": "v1",
                "limits": {
                    "max_k": MAX_K,
                    "max_query_chars": MAX_QUERY_CHARS,
                    "max_upload_bytes": MAX_UPLOAD_BYTES,
                    "max_upload_pixels": MAX_UPLOAD_PIXELS,
                    "concurrency": self.slots.running,
                    "queue": self.slots.queue,
                },
            }

        @router.get("/search/text", summary="Photos matching a text in any language")
        @_with_options([_keyword("text", str, Query(..., description=TEXT_HELP))], Query)
        async def search_text(**values):
            return await self.work(answers.search_text, **values)

        @router.post("/search/image", summary="Photos that look like the uploaded image (multipart form)")
        @_with_options([_keyword("image", UploadFile, File(..., description=IMAGE_HELP))], Form)
        async def search_image(**values):
            return await self.work(_with_upload, answers.search_image, values.pop("image"), **values)

        @router.post("/search/composed", summary="Photos like the uploaded image, changed as the text says")
        @_with_options(
            [
                _keyword("image", UploadFile, File(..., description=IMAGE_HELP)),
                _keyword("text", str, Form(..., description=TEXT_HELP)),
            ],
            Form,
        )
        async def search_composed(**values):
            return await self.work(
                _with_upload, answers.search_composed, values.pop("image"), values.pop("text"), **values
            )

        @router.get("/photos/{image_id}", summary="One photo's record (as in search results) and its file links")
        async def photo(image_id: int):
            record = self._record(image_id)
            payload = result_of(record, 0.0).to_json()
            del payload["score"]
            payload["text"] = self.engine.photo_text(record.content_hash)  # what OCR read in it ("" when nothing)
            base = f"{PREFIX}/photos/{int(record.id)}"
            payload["links"] = {
                "preview": f"{base}/preview",
                "screen": f"{base}/screen",
                "original": f"{base}/original",
            }
            return payload

        @router.get(
            "/photos/{image_id}/preview",
            summary=f"A small JPEG ({PREVIEW_SIZE} px long side)",
            response_class=FileResponse,
        )
        async def preview(image_id: int):
            return await self._rendition(image_id, self.previews)

        @router.get(
            "/photos/{image_id}/screen",
            response_class=FileResponse,
            summary=f"A screen-sized JPEG ({SCREEN_SIZE} px long side, upright as the camera meant)",
        )
        async def screen(image_id: int):
            return await self._rendition(image_id, self.screens)

        @router.get("/photos/{image_id}/original", summary="The original file, as indexed", response_class=FileResponse)
        async def original(image_id: int):
            record = self._record(image_id)
            path = self.engine.servable_path(record.path)
            if not path.is_file():
                raise HTTPException(
                    404,
                    f"photo {int(record.id)}: the original is not here (moved or deleted since "
                    "indexing, or not published with this index); its preview is",
                )
            return FileResponse(path, filename=printable(path.name), content_disposition_type="inline")

        @router.get("/albums", summary="The index's albums (saved searches)")
        async def albums():
            return await run_in_threadpool(answers.list_albums)

        @router.get("/albums/{name}", summary="An album's photos now: pinned first, then its search run again")
        async def album(name: str, k: int = Query(ALBUM_K, description=f"photos at most, 1–{ALBUM_K}")):
            return await self.work(answers.open_album, name, k)

        @router.put("/albums/{name}", summary="Save a text query with its options as an album (pins are kept)")
        @_with_options(
            [
                _keyword("name", str, Path_(..., description="the album's name")),
                _keyword("text", str, Query(..., description=TEXT_HELP)),
            ],
            Query,
        )
        async def save_album(**values):
            return await run_in_threadpool(answers.save_album, values.pop("name"), values.pop("text"), **values)

        @router.post(
            "/albums/{name}/photos/{image_id}", summary="Pin a photo into an album, remove it for good, or undo either"
        )
        async def album_photo(
            name: str, image_id: int, action: str = Query("pin", description=f"one of {', '.join(PIN_ACTIONS)}")
        ):
            return await run_in_threadpool(answers.album_photo, name, image_id, action)

        @router.get("/similar-groups", summary="Groups of near-identical photos (best first in each)")
        async def similar_groups(
            threshold: float | None = Query(None, description="least similarity, 0–1 (default: the model's)"),
        ):
            return await self.work(answers.similar_groups, threshold)

        return router

    def _record(self, image_id: int):
        try:
            return self.engine.record(image_id)
        except ValueError as error:
            raise HTTPException(404, str(error)) from None

    async def _rendition(self, image_id: int, cache: ThumbnailCache):
        record = self._record(image_id)
        path = self.engine.servable_path(record.path)  # PathNotAllowedError: 403, never read

        def render():
            try:
                return cache.get(path, record.content_hash)
            except (ValueError, OSError) as error:  # mme5.ImageError is a ValueError: unreadable or gone
                raise HTTPException(404, f"photo {int(record.id)} cannot be shown: {error}") from None

        target = await self.work(render)
        return FileResponse(target, media_type="image/jpeg")


def _error_answer(status: int | None):
    """An exception handler answering ``{"error": sentence}`` (HTTPException: its own status and headers)."""

    async def handler(_request, error):
        if isinstance(error, HTTPException):
            return _answer(error.status_code, str(error.detail), getattr(error, "headers", None))
        return _answer(status, str(error), {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None)

    return handler


async def _validation_error(_request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 as the API's 400 with one sentence: which parameter, what is wrong, what was sent."""
    problems = []
    for item in error.errors():
        where = item.get("loc", ())
        name = where[-1] if where else "request"
        sent = item.get("input")
        got = "" if item.get("type") == "missing" or isinstance(sent, dict) else f", got {sent!r}"
        problems.append(f"{name}: {item.get('msg', 'invalid').rstrip('.')}{got}")
    return _answer(400, "; ".join(problems) or "the request is not valid")


def upload_name(filename: str | None) -> str:
    """A safe file name for an upload (the sentences about it name it): no folders, no odd characters."""
    name = re.sub(r"[^\w.\- ]+", "_", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[:100] or "upload"


def _with_upload(search: Callable, upload: UploadFile, *args, **values):
    """``search(path, *args, **values)`` on the upload written to a private temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir=private_dir(cache_home() / "uploads")))
    try:
        target = folder / upload_name(upload.filename)
        with open(target, "wb") as output:
            shutil.copyfileobj(upload.file, output, 2**20)
        return search(str(target), *args, **values)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rest_routes(engine, auth, args) -> list[Mount]:
    """The routes ``serve()`` adds to the Gradio server: the REST app at /api/v1, with tokens when login is on."""
    import os

    from .tokens import tokens_file_for

    tokens = TokenStore(tokens_file_for(args.auth_file)) if auth is not None else None
    api = RestAPI(
        engine,
        tokens,
        concurrency=args.concurrency,
        queue=args.api_queue,
        trust_forwarded=bool(os.environ.get("SPACE_ID")),
    )
    return [api.mount()]
