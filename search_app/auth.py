"""Login for the app: a users file of argon2 hashes (or one MME5_AUTH secret on Spaces) and a per-address slow-down.

The users file has one ``name:hash`` line per user (``#`` comments allowed); ``python -m search_app add-user NAME``
writes it. Hashes are argon2id (argon2-cffi), so a stolen file does not reveal the passwords.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mme5.atomic import write_atomic

from .errors import SearchAppError
from .private import config_home

NAME = re.compile(r"^[^\s:#]{1,64}$")
FREE_FAILURES = 5  # failed logins from one address before each further attempt waits
BASE_DELAY_S = 1.0  # the 6th failure waits 1 s, the 7th 2 s, the 8th 4 s ...
MAX_DELAY_S = 60.0
FORGET_AFTER_S = 3600.0  # an address with no failure for an hour starts afresh
_hasher = PasswordHasher()
log = logging.getLogger(__name__)


class AuthError(SearchAppError):
    """An unusable users file or MME5_AUTH value, or a refused add-user."""


def default_users_file() -> Path:
    return config_home() / "users"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def read_users(path: str | os.PathLike) -> dict[str, str]:
    """{name: argon2 hash} from a users file; AuthError names the line that is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuthError(
            f"{path}: users file not found; create it with: python -m search_app add-user NAME --auth-file {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise AuthError(f"{path}: cannot read the users file ({error})") from None
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, hashed = line.partition(":")
        if not NAME.match(name) or not hashed.startswith("$argon2"):
            raise AuthError(
                f"{path}, line {number}: expected NAME:HASH with an argon2 hash (as written by "
                "python -m search_app add-user NAME)"
            )
        users[name] = hashed
    if not users:
        raise AuthError(
            f"{path}: no users in the file; add one with: python -m search_app add-user NAME --auth-file {path}"
        )
    return users


def add_user(path: str | os.PathLike, name: str, password: str) -> bool:
    """Add ``name`` or change its password; True if it was new. The file is rewritten atomically, mode 0600."""
    if not NAME.match(name):
        raise AuthError(f"{name!r}: a user name is 1-64 characters without spaces, ':' or '#'")
    if not password:
        raise AuthError("the password is empty; choose one with at least 8 characters")
    if len(password) < 8:
        raise AuthError("the password is shorter than 8 characters; choose a longer one")
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entry = f"{name}:{hash_password(password)}"
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    write_atomic(path, "\n".join([*kept, entry]) + "\n")
    os.chmod(path, 0o600)
    return len(kept) == len(lines)


def add_user_cli(argv: list[str]) -> int:
    """``python -m search_app add-user NAME [--auth-file FILE]``: asks for the password twice, never echoes it."""
    import argparse

    from mme5.settings import Settings

    parser = argparse.ArgumentParser(
        prog="python -m search_app add-user",
        description="Add a user who may log in to the app, or change a "
        "user's password. The password is asked twice and never echoed.",
        epilog="Examples:\n  python -m search_app add-user alice\n"
        "  python -m search_app add-user bob --auth-file /etc/mme5/users\n"
        "  python app.py --host 0.0.0.0 --auth-file /etc/mme5/users",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="user name (no spaces, ':' or '#')")
    parser.add_argument(
        "--auth-file",
        type=Path,
        default=Settings.from_env().auth_file or default_users_file(),
        help=f"users file to update [env MME5_AUTH_FILE; default {default_users_file()}]",
    )
    args = parser.parse_args(argv)
    if not NAME.match(args.name):
        parser.error(f"{args.name!r}: a user name is 1-64 characters without spaces, ':' or '#'")
    password = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Same password again: ") != password:
        raise AuthError("the two passwords differ; nothing was changed")
    new = add_user(args.auth_file, args.name, password)
    print(f"{'added' if new else 'changed the password of'} {args.name} in {args.auth_file}", file=sys.stderr)
    print(f"start the app with: python app.py --auth-file {args.auth_file}", file=sys.stderr)
    return 0


class Authenticator:
    """Checks names and passwords against the users file as it is now; pass ``login`` as Gradio's ``auth=``.

    The file is re-read when it changes (``refresh``, called by ``SessionGuard`` on every request): a removed
    user cannot log in any more, a changed password works at once and the old one does not. An unreadable or
    broken file lets no file user in (logged) until it is fixed. Every check costs one argon2 verification,
    whether the name is a file user, the MME5_AUTH user (hashed at start) or unknown, so the answer's timing
    does not tell which names exist.

    Not the instance itself as ``auth=``: Gradio awaits ``auth`` only when ``inspect.iscoroutinefunction`` says
    so, which is False for an object with an async ``__call__``; the un-awaited coroutine would count as a success.
    """

    def __init__(
        self,
        hashes: dict[str, str] | None = None,
        plain: dict[str, str] | None = None,
        users_file: str | os.PathLike | None = None,
    ):
        self.users_file = Path(users_file) if users_file else None
        self.hashes = dict(hashes or {})
        self.fixed = {name: hash_password(password) for name, password in (plain or {}).items()}
        self._dummy = hash_password("not a password anyone uses")  # same work for unknown names
        self._stamp = self._file_stamp()
        self._lock = threading.Lock()

    @property
    def users(self) -> list[str]:
        return sorted({*self.hashes, *self.fixed})

    def hash_of(self, name: str) -> str | None:
        """The argon2 hash ``name`` logs in with now (None: not a user)."""
        return self.fixed.get(name) or self.hashes.get(name)

    def _file_stamp(self):
        if self.users_file is None:
            return None
        try:
            info = self.users_file.stat()
        except OSError:
            return "missing"
        return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns

    def refresh(self) -> set[str]:
        """Re-read the users file if it changed; the names removed or whose password changed (their sessions end)."""
        if self.users_file is None:
            return set()
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return set()
            self._stamp = stamp
            try:
                hashes = read_users(self.users_file)
            except AuthError as error:
                log.error("%s; no user of the file can log in until it is fixed", error)
                hashes = {}
            ended = {name for name, hashed in self.hashes.items() if hashes.get(name) != hashed}
            self.hashes = hashes
            log.info(
                "re-read the users file %s: %d user(s)%s",
                self.users_file,
                len(hashes),
                f"; sessions ended for {', '.join(sorted(ended))}" if ended else "",
            )
            return {name for name in ended if name not in self.fixed}

    def check(self, name: str, password: str) -> bool:
        hashed = self.hash_of(name)
        try:
            _hasher.verify(hashed or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return hashed is not None

    async def login(self, name: str, password: str) -> bool:
        """True when they match; argon2's deliberate slowness runs off the event loop."""
        return await asyncio.to_thread(self.check, name, password)


def load_auth(auth_file: str | os.PathLike | None, secret: str | None) -> Authenticator | None:
    """The authenticator from ``--auth-file`` / the default users file and ``MME5_AUTH=user:password``; None if neither."""
    hashes, plain, users_file = {}, {}, None
    if auth_file:
        users_file = auth_file
    elif default_users_file().is_file():
        users_file = default_users_file()
    if users_file:
        hashes = read_users(users_file)
    if secret:
        name, separator, password = secret.partition(":")
        if not separator or not NAME.match(name) or not password:
            raise AuthError("MME5_AUTH must be user:password (e.g. a Spaces secret alice:correct-horse-battery)")
        plain[name] = password
    return Authenticator(hashes, plain, users_file) if hashes or plain else None


class SessionGuard:
    """ASGI middleware: the logins Gradio remembers follow the users file.

    Gradio keeps ``app.tokens`` (login cookie -> user name) for as long as it runs. Before each request the users
    file is re-read if it changed, and the sessions of users removed from it (or whose password changed) are
    forgotten, so their next request gets Gradio's 401 and the login page.
    """

    def __init__(self, app, authenticator: Authenticator):
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            ended = self.authenticator.refresh()
            tokens = getattr(scope.get("app"), "tokens", None)
            if ended and tokens is not None:
                for token in [token for token, user in tokens.items() if user in ended]:
                    tokens.pop(token, None)
        return await self.app(scope, receive, send)


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoginThrottle:
    """ASGI middleware: after 5 failed logins from one address, each further attempt from it waits 1, 2, 4 ... s.

    Only that address waits (the real user elsewhere logs in at once); attempts from it queue one
    at a time, so parallel guessing gains nothing; a success or an hour without failures resets it.
    """

    def __init__(
        self, app, trust_forwarded: bool = False, base_delay: float = BASE_DELAY_S, free_failures: int = FREE_FAILURES
    ):
        self.app = app
        self.trust_forwarded = trust_forwarded
        self.base_delay = base_delay
        self.free_failures = free_failures
        self.clients: dict[str, _Record] = {}

    def delay(self, failures: int) -> float:
        if failures < self.free_failures:
            return 0.0
        return min(self.base_delay * 2 ** (failures - self.free_failures), MAX_DELAY_S)

    def client(self, scope) -> str:
        if self.trust_forwarded:  # behind the Spaces proxy: it appends the real address last
            for name, value in scope.get("headers", []):
                if name == b"x-forwarded-for":
                    return value.decode("latin-1").split(",")[-1].strip()
        client = scope.get("client")
        return client[0] if client else "unknown"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope["path"].rstrip("/").endswith("/login"):
            return await self.app(scope, receive, send)
        now = time.monotonic()
        self._forget(now)
        record = self.clients.setdefault(self.client(scope), _Record())
        async with record.lock:
            wait = self.delay(record.failures)  # counted from this attempt's arrival: a client cannot bank time
            if wait > 0:
                await asyncio.sleep(wait)
            status = {}

            async def capture(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            await self.app(scope, receive, capture)
            if status.get("code") == 200:
                record.failures = 0
            elif status.get("code") == 400:  # Gradio's "Incorrect credentials."
                record.failures += 1
                record.last = time.monotonic()

    def _forget(self, now: float) -> None:
        if len(self.clients) > 1000:
            for address in [
                a for a, r in self.clients.items() if now - r.last > FORGET_AFTER_S and not r.lock.locked()
            ]:
                del self.clients[address]
