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
import random
import sys
import threading
import time

import openai

from mme5.images import load_image

from .backend import BackendError, Completion, FatalBackendError

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
                if part["type"] == "image" else part
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


class OpenAIBackend:
    """Chat completions with JSON mode (dropped once if the server rejects it) and counted retries."""

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 5, backoff: float = 1.0, max_wait: float = 120.0, json_mode: bool = True,
                 image_max_side: int = 1024, max_tokens: int = 2048, temperature: float = 0.7):
        self.model = model
        self.base_url = base_url or DEFAULT_BASE_URL
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "none", timeout=timeout, max_retries=0)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.json_mode = json_mode
        self.image_max_side = image_max_side
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._lock = threading.Lock()

    def _create(self, wire: list[dict]):
        extra = {"response_format": {"type": "json_object"}} if self.json_mode else {}
        try:
            return self.client.chat.completions.create(
                model=self.model, messages=wire, max_tokens=self.max_tokens, temperature=self.temperature, **extra)
        except json.JSONDecodeError as error:
            raise MalformedResponse(f"response body is not JSON ({error.msg})") from None

    def _wait(self, attempt: int, asked: float | None) -> float:
        backoff = self.backoff * (2 ** attempt) * (1 + random.random() * 0.25)
        return min(self.max_wait, max(asked or 0.0, backoff if asked is None else 0.0))

    def complete(self, messages: list[dict]) -> Completion:
        wire = to_wire(messages, self.image_max_side)
        retries = 0
        while True:
            try:
                return _completion(self._create(wire), retries)
            except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                    openai.InternalServerError, MalformedResponse) as error:
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
                    "and the API key (--api-key or OPENAI_API_KEY).") from error
            except openai.BadRequestError as error:
                if self.json_mode and "response_format" in str(error):
                    with self._lock:
                        if self.json_mode:
                            print("synth: server does not support JSON mode; asking for JSON in the prompt only",
                                  file=sys.stderr)
                        self.json_mode = False
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
    return Completion(text=text, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                      completion_tokens=getattr(usage, "completion_tokens", 0) or 0, retries=retries)
