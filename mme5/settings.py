"""Every ``MME5_*`` environment variable, read, checked and documented in one place.

``Settings.from_env()`` reads them when called (never at import, so a test or a Space that sets one sees
it); a malformed value is a SettingsError whose sentence names the variable and what to write. An unset
(or empty) variable is ``None``: the caller's own default applies, as the table below says.
``python -m mme5 settings`` prints this table with the values in effect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import InputError

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingsError(InputError):
    """An ``MME5_*`` variable holds a value that cannot be used; the message names it and says what to write."""


def _flag(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise SettingsError(f"{name}={text!r}: expected 1 or 0 (also true/false, yes/no, on/off)")


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{name}={text!r}: expected a whole number of at least 1")
    return value


def _port(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise SettingsError(f"{name}={text!r}: expected a port number from 0 to 65535")
    return value


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also NaN
        raise SettingsError(f"{name}={text!r}: expected a number of seconds, e.g. 30 (0: off)")
    return value


def _lengths(name: str, text: str) -> tuple[int, ...]:
    try:
        lengths = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        lengths = ()
    if not lengths or lengths[0] < 1:
        raise SettingsError(f"{name}={text!r}: give token lengths separated by commas, e.g. 32,64,256")
    return lengths


def _count(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise SettingsError(f"{name}={text!r}: expected a whole number of at least 0")
    return value


def _positive_number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):  # also NaN
        raise SettingsError(f"{name}={text!r}: expected a positive number, e.g. 2 or 0.5")
    return value


def _names(name: str, text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _text(name: str, text: str) -> str:
    return text


def tile_url(name: str, text: str) -> str:
    """A map tile URL template (http(s)://… with {z}, {x} and {y}), or "none" for a map without tiles."""
    text = text.strip()
    if text.lower() == "none":
        return "none"
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    missing = [part for part in ("{z}", "{x}", "{y}") if part not in text]
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or missing
        or any(character in text for character in "\"'<>` \t\n")
    ):
        raise SettingsError(
            f"{name}={text!r}: expected a tile URL template such as "
            "https://tile.openstreetmap.org/{z}/{x}/{y}.png (http or https, with {z}, {x} and {y}), "
            "or none for a map without tiles"
        )
    return text


def _path(name: str, text: str) -> Path:
    return Path(text).expanduser()


@dataclass(frozen=True)
class Variable:
    """One variable: its name, how its text becomes a value, what unset means, who reads it, what it does."""

    name: str
    parse: Callable[[str, str], object]
    default: str
    used_by: str
    help: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "MME5_CACHE_DIR",
        _path,
        "$XDG_CACHE_HOME/mme5 (~/.cache/mme5)",
        "mme5",
        "folder for model digests and ONNX exports",
    ),
    Variable(
        "MME5_FAST_ATTENTION",
        _flag,
        "on for CUDA",
        "mme5",
        "Mllama's exact mask-free vision attention (0 turns it off, 1 forces it)",
    ),
    Variable(
        "MME5_CPU_BF16",
        _flag,
        "0",
        "mme5",
        "1: on a CPU with bf16 matrix units (AMX) the auto runtime runs torch in bf16 (same vector space)",
    ),
    Variable("MME5_COMPILE_QUERIES", _flag, "1", "mme5", "compile text queries with CUDA graphs (0: stay eager)"),
    Variable(
        "MME5_QUERY_BUCKETS",
        _lengths,
        "16,32,64,128,256",
        "mme5",
        "token lengths compiled for text queries (fewer: shorter warm-up; longer queries run eagerly)",
    ),
    Variable("MME5_GPU_SEARCH", _flag, "1", "indexer", "search a flat index on the GPU with torch (0: CPU)"),
    Variable("MME5_INDEX", _text, "the indexer's default", "app", "index folder or hf://datasets/USER/NAME (--index)"),
    Variable("MME5_MODEL", _text, "the index's model", "app", "hub id or local folder; tiny = smoke mode (--model)"),
    Variable("MME5_ADAPTER", _text, "none", "app", "peft adapter folder (--adapter)"),
    Variable("MME5_DEVICE", _text, "cuda, else mps, else cpu", "app", "cpu, cuda, cuda:1 ... (--device)"),
    Variable("MME5_RUNTIME", _text, "auto", "app", "torch, onnx or onnx-int8 (--runtime)"),
    Variable("MME5_PHOTOS", _text, "assets/photos", "app", "folder indexed when the index does not exist (--photos)"),
    Variable("MME5_HOST", _text, "127.0.0.1 (0.0.0.0 on Spaces)", "app", "address to bind (--host)"),
    Variable("MME5_PORT", _port, "$GRADIO_SERVER_PORT or 7860", "app", "port (--port)"),
    Variable("MME5_SHARE", _flag, "0", "app", "also open a public *.gradio.live link (--share)"),
    Variable("MME5_AUTH_FILE", _text, "add-user's file when it exists", "app, add-user", "users file (--auth-file)"),
    Variable("MME5_AUTH", _text, "none", "app", "one login USER:PASSWORD (a Spaces secret)", secret=True),
    Variable(
        "MME5_ALLOW_ANONYMOUS",
        _flag,
        "0",
        "app",
        "serve without login on a network address or --share (--allow-anonymous)",
    ),
    Variable("MME5_WATCH", _flag, "0", "app", "keep the index current while serving (--watch)"),
    Variable("MME5_POLL", _seconds, "file events", "app", "with --watch: rescan every SECONDS (--poll)"),
    Variable("MME5_CONCURRENCY", _positive_int, "1", "app", "queries run at once on the model (--concurrency)"),
    Variable("MME5_PAGE_SIZE", _positive_int, "24", "app", "photos per page in the UI (--page-size)"),
    Variable(
        "MME5_ALLOWED_HOSTS",
        _names,
        "loopback names, IPs, --host",
        "app",
        "further host names the app answers to, comma-separated (--allowed-host)",
    ),
    Variable("MME5_API_QUEUE", _count, "256", "app", "REST requests that may wait beyond --concurrency (--api-queue)"),
    Variable(
        "MME5_CACHE_MAX_GB", _positive_number, "2", "app", "size budget of the app's cache folders (--cache-max-gb)"
    ),
    Variable(
        "MME5_CACHE_MAX_DAYS",
        _positive_number,
        "30",
        "app",
        "files of the app's cache unused this long go (--cache-max-days)",
    ),
    Variable(
        "MME5_MAP_TILES",
        tile_url,
        "OpenStreetMap's tiles",
        "app",
        "map tile URL template with {z}/{x}/{y}, or none (--map-tiles)",
    ),
)
BY_NAME = {variable.name: variable for variable in VARIABLES}


@dataclass(frozen=True)
class Settings:
    """The typed values of every ``MME5_*`` variable; ``None`` where unset (see ``VARIABLES``)."""

    cache_dir: Path | None = None
    fast_attention: bool | None = None
    cpu_bf16: bool | None = None
    compile_queries: bool | None = None
    query_buckets: tuple[int, ...] | None = None
    gpu_search: bool | None = None
    index: str | None = None
    model: str | None = None
    adapter: str | None = None
    device: str | None = None
    runtime: str | None = None
    photos: str | None = None
    host: str | None = None
    port: int | None = None
    share: bool | None = None
    auth_file: str | None = None
    auth: str | None = None
    allow_anonymous: bool | None = None
    watch: bool | None = None
    poll: float | None = None
    concurrency: int | None = None
    page_size: int | None = None
    allowed_hosts: tuple[str, ...] | None = None
    api_queue: int | None = None
    cache_max_gb: float | None = None
    cache_max_days: float | None = None
    map_tiles: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every variable now; SettingsError (naming the variable) for a malformed one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}  # field name -> the parsed value, typed per variable by VARIABLES
        for variable in VARIABLES:
            text = environ.get(variable.name, "").strip()
            values[_field(variable.name)] = variable.parse(variable.name, text) if text else None
        return cls(**values)


def _field(name: str) -> str:
    return name.removeprefix("MME5_").lower()


def user_cache_dir() -> Path:
    """The per-user cache of this repo: $MME5_CACHE_DIR, else $XDG_CACHE_HOME/mme5 (default ~/.cache/mme5)."""
    explicit = Settings.from_env().cache_dir
    return explicit if explicit is not None else xdg_cache_home() / "mme5"


def xdg_cache_home() -> Path:
    """$XDG_CACHE_HOME, else ~/.cache (the XDG base directory rule; the one place it is written)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def table(environ: Mapping[str, str] | None = None) -> str:
    """Every variable: name, value in effect (secrets hidden), default when unset, reader, meaning."""
    environ = os.environ if environ is None else environ
    rows = [("variable", "value", "when unset", "read by", "meaning")]
    for variable in VARIABLES:
        text = environ.get(variable.name, "").strip()
        shown = ("(set, hidden)" if variable.secret else text) if text else "-"
        rows.append((variable.name, shown, variable.default, variable.used_by, variable.help))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows
    )
