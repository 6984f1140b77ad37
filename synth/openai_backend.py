"""Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, TGI, ...).

The ``openai`` client's own retries are switched off so that every retry is counted and
Retry-After is honoured exactly; images travel as JPEG data URLs.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import io
import json
import logging
import random
import threading
import time

import openai

from mme5.images import load_image

from .backend import BackendError, Completion, FatalBackendError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@functools.lru_cache(maxsize=64)  # a repair call or a retry sends the same images again
def data_url(path: str, max_side: int = 1024, quality: int = 90) -> str:
    """A JPEG data URL of the image, downscaled so its longer side is at most ``max_side``."""
    image = load_image(path, draft_size=max_side)
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_wire(messages: list[dict], max_side: int) -> list[dict]:
    """Neutral messages (``{"type": "image", "path"}``) -> OpenAI ``image_url`` parts."""
    wire = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = [
                {"type": "image_url", "image_url": {"url": data_url(part["path"], max_side)}}
                if part["type"] == "image"
                else part
                for part in content
            ]
        wire.append({"role": message["role"], "content": content})
    return wire


def retry_after(error: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    headers = error.response.headers if error.response is not None else {}
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


# Structured-output modes, strongest first; a run settles on one (see OpenAIBackend.structured).
MODES = ("json_schema", "json_object", "text")


def response_format(mode: str) -> dict | None:
    if mode == "json_schema":
        from .schema import response_schema

        return {
            "type": "json_schema",
            "json_schema": {"name": "synth_generation", "strict": True, "schema": response_schema()},
        }
    return {"type": "json_object"} if mode == "json_object" else None


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (json.JSONDecodeError, TypeError):
        return False


class OpenAIBackend:
    """Chat completions with structured outputs and counted retries.

    It asks for ``json_schema`` (strict, from the pydantic model) first; a server that rejects
    it with a 400 is asked with ``json_object``, then with plain text (parsed and repaired by
    ``synth.schema``), and a server that accepts the format but answers with something other
    than a JSON object is treated as plain text from then on.  Each step down happens once per
    run, and ``structured`` says where the run settled and why.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_wait: float = 120.0,
        json_mode: bool = True,
        image_max_side: int = 1024,
        max_tokens: int = 2048,
        temperature: float = 0.7,
        structured: str = "json_schema",
    ):
        self.model = model
        self.base_url = base_url or DEFAULT_BASE_URL
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "none", timeout=timeout, max_retries=0)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        if structured not in MODES:
            raise ValueError(f"unknown structured-output mode {structured!r}; valid: {', '.join(MODES)}")
        self.mode = structured if json_mode else "text"
        self._events: list[str] = [] if json_mode else ["text: structured outputs switched off (--no-json-mode)"]
        self._confirmed = not json_mode  # True once an answer in the current mode was a JSON object
        self.image_max_side = image_max_side
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._lock = threading.Lock()

    @property
    def json_mode(self) -> bool:
        return self.mode != "text"

    @property
    def structured(self) -> dict:
        """Where the negotiation settled: ``mode`` and the steps that led there (for ``stats``)."""
        return {"mode": self.mode, "confirmed": self._confirmed, "steps": list(self._events)}

    def _step_down(self, failed: str, why: str, to: str | None = None) -> None:
        """Leave ``failed`` for the next mode (or ``to``), once, even when several requests in flight hit it."""
        with self._lock:
            if self.mode != failed:
                return
            self.mode = to or MODES[MODES.index(failed) + 1]
            self._confirmed = False
            self._events.append(f"{failed} -> {self.mode}: {why}")
            logger.warning(f"synth: {why}; asking with {self.mode} from now on")

    def _observe(self, mode: str, text: str) -> None:
        if mode == "text" or self._confirmed:
            return
        if _is_json_object(text.strip()):
            with self._lock:
                if self.mode == mode:
                    self._confirmed = True
        else:  # accepted the parameter but did not follow it: parse and repair plain text instead
            self._step_down(
                mode, f"the server accepted {mode} but did not answer with a JSON object (ignored it)", to="text"
            )

    def _create(self, wire: list[dict], mode: str):
        format_ = response_format(mode)
        extra = {"response_format": format_} if format_ else {}
        try:
            return self.client.chat.completions.create(
                model=self.model, messages=wire, max_tokens=self.max_tokens, temperature=self.temperature, **extra
            )
        except json.JSONDecodeError as error:
            raise MalformedResponse(f"response body is not JSON ({error.msg})") from None

    def _wait(self, attempt: int, asked: float | None) -> float:
        backoff = self.backoff * (2**attempt) * (1 + random.random() * 0.25)
        return min(self.max_wait, max(asked or 0.0, backoff if asked is None else 0.0))

    def complete(self, messages: list[dict]) -> Completion:
        wire = to_wire(messages, self.image_max_side)
        retries = 0
        while True:
            mode = self.mode
            try:
                completion = _completion(self._create(wire, mode), retries)
                self._observe(mode, completion.text)
                return completion
            except (
                openai.APITimeoutError,
                openai.APIConnectionError,
                openai.RateLimitError,
                openai.InternalServerError,
                MalformedResponse,
            ) as error:
                kind = _describe(error)
                if retries >= self.max_retries:
                    raise BackendError("api_error", f"{kind}, gave up after {retries} retries", retries) from error
                asked = retry_after(error) if isinstance(error, openai.APIStatusError) else None
                time.sleep(self._wait(retries, asked))
                retries += 1
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as error:
                raise FatalBackendError(
                    f"{self.base_url} refused model {self.model!r}: {_describe(error)}. Check --model, --base-url "
                    "and the API key (--api-key or OPENAI_API_KEY)."
                ) from error
            except openai.BadRequestError as error:
                message = str(error).lower()
                if mode != "text" and any(
                    word in message
                    for word in ("response_format", "json_schema", "json_object", "structured output", "guided")
                ):
                    self._step_down(mode, f"the server rejected {mode} ({_describe(error)})")
                    continue
                raise BackendError("api_error", _describe(error), retries) from error
            except openai.APIStatusError as error:
                raise BackendError("api_error", _describe(error), retries) from error


def _describe(error: Exception) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {str(error.message)[:200]}"
    if isinstance(error, openai.APITimeoutError):
        return "request timed out"
    if isinstance(error, MalformedResponse):
        return str(error)
    return f"{type(error).__name__}: {str(error)[:200]}"


class MalformedResponse(Exception):
    """HTTP 200 but not a chat completion (a proxy's error page, a truncated body): retried like a 5xx."""


def _completion(response, retries: int) -> Completion:
    choices = getattr(response, "choices", None)
    if not choices or getattr(choices[0], "message", None) is None:
        preview = str(response)[:120].replace("\n", " ")
        raise MalformedResponse(f"answer is not a chat completion (starts {preview!r})")
    text = choices[0].message.content or ""
    if not isinstance(text, str):
        raise MalformedResponse(f"message content is {type(text).__name__}, not text")
    usage = response.usage
    return Completion(
        text=text,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        retries=retries,
    )
