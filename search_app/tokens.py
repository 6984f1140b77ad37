"""API tokens for the REST routes (search_app/rest.py): made and revoked on the command line, stored hashed.

    python -m search_app add-token NAME      # prints a new token once (replacing NAME's old one)
    python -m search_app revoke-token NAME   # that token stops working at once (the file is re-read on change)

A program sends its token as ``Authorization: Bearer TOKEN``. The tokens file lies beside the users file
(``users`` -> ``users.tokens``), one ``NAME:sha256$SALT$DIGEST`` line per token, mode 0600.

Why a salted SHA-256 and not argon2 like the passwords: a token is 256 random bits chosen by the app, not by a
person, so even a fast hash of it cannot be reversed by guessing when the file is stolen; argon2's deliberate cost
protects guessable passwords only, and would be paid on every API request instead (tens of milliseconds each, and a
way for anyone sending wrong tokens to burn the server's CPU). The comparison is constant-time and visits every
entry. Guessing over the network is slowed per client exactly like wrong passwords (auth.LoginThrottle's schedule).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
from pathlib import Path

from mme5.atomic import write_atomic
from mme5.settings import Settings

from .auth import NAME, AuthError, default_users_file

log = logging.getLogger(__name__)

PREFIX = "mme5_"  # recognisable in a config file or a secret scanner
TOKEN_BYTES = 32  # 256 bits from the OS's generator
SCHEME = "sha256"


def tokens_file_for(users_file: str | os.PathLike | None) -> Path:
    """The tokens file beside a users file (the default users file when None)."""
    users = Path(users_file) if users_file else default_users_file()
    return users.with_name(users.name + ".tokens")


def _digest(salt: str, token: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + token.encode("utf-8", "surrogatepass")).hexdigest()


def read_tokens(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """{name: (salt, digest)}; an absent file is no tokens; AuthError names a line that is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise AuthError(f"{path}: cannot read the tokens file ({error})") from None
    tokens = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, stored = line.partition(":")
        scheme, _, rest = stored.partition("$")
        salt, _, digest = rest.partition("$")
        if (
            not NAME.match(name)
            or scheme != SCHEME
            or len(salt) != 32
            or len(digest) != 64
            or (salt + digest).strip("0123456789abcdef")
        ):
            raise AuthError(
                f"{path}, line {number}: expected NAME:sha256$SALT$DIGEST (as written by "
                "python -m search_app add-token NAME)"
            )
        tokens[name] = (salt, digest)
    return tokens


def _write(path: Path, tokens: dict[str, tuple[str, str]]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = ["# API tokens of the photo search app: NAME:sha256$SALT$DIGEST (python -m search_app add-token NAME)"]
    lines += [f"{name}:{SCHEME}${salt}${digest}" for name, (salt, digest) in tokens.items()]
    write_atomic(path, "\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def add_token(path: str | os.PathLike, name: str) -> str:
    """A new token for ``name`` (replacing its old one), stored hashed; the token itself is returned, never kept."""
    if not NAME.match(name):
        raise AuthError(f"{name!r}: a token name is 1-64 characters without spaces, ':' or '#'")
    path = Path(path)
    tokens = read_tokens(path)
    token = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    salt = secrets.token_hex(16)
    tokens[name] = (salt, _digest(salt, token))
    _write(path, tokens)
    return token


def revoke_token(path: str | os.PathLike, name: str) -> None:
    """Remove ``name``'s token; AuthError if it has none."""
    path = Path(path)
    tokens = read_tokens(path)
    if name not in tokens:
        known = ", ".join(sorted(tokens)) or "none"
        raise AuthError(f"{path}: no token named {name!r} (tokens: {known}); nothing was changed")
    del tokens[name]
    _write(path, tokens)


class TokenStore:
    """Checks bearer tokens against the tokens file, re-reading it when it changes (a revoke works at once)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._tokens = read_tokens(self.path)  # a broken file refuses the start, with its line

    def _stat(self):
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    def _current(self) -> dict[str, tuple[str, str]]:
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                try:
                    tokens = read_tokens(self.path)
                except AuthError as error:  # refuse every token until it is fixed, rather than guess
                    log.error("%s; every API token is refused until the file is fixed", error)
                    tokens = {}
                self._tokens, self._stamp = tokens, stamp
        return self._tokens

    @property
    def names(self) -> list[str]:
        return sorted(self._current())

    def check(self, token: str) -> str | None:
        """The name the token belongs to, or None. Compares with every entry in constant time (no early exit)."""
        owner = None
        for name, (salt, digest) in self._current().items():
            if hmac.compare_digest(_digest(salt, token), digest):
                owner = name
        return owner


def _parser(command: str, description: str, example: str):
    import argparse

    parser = argparse.ArgumentParser(
        prog=f"python -m search_app {command}",
        description=description,
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="token name, e.g. a user or a device (no spaces, ':' or '#')")
    parser.add_argument(
        "--auth-file",
        type=Path,
        default=Settings.from_env().auth_file or default_users_file(),
        help="users file the app is started with; the tokens file lies beside it (FILE.tokens) "
        f"[env MME5_AUTH_FILE; default {default_users_file()}]",
    )
    return parser


def add_token_cli(argv: list[str]) -> int:
    """``python -m search_app add-token NAME [--auth-file FILE]``: the token on stdout (only once), notes on stderr."""
    parser = _parser(
        "add-token",
        "Make an API token for the REST routes (/api/v1) and print it once. A token "
        "of that name made before stops working.",
        "Examples:\n  python -m search_app add-token alice\n"
        "  TOKEN=$(python -m search_app add-token kitchen-frame --auth-file /etc/mme5/users)\n"
        "  curl -H \"Authorization: Bearer $TOKEN\" 'http://HOST:7860/api/v1/search/text?text=beach'",
    )
    args = parser.parse_args(argv)
    if not NAME.match(args.name):
        parser.error(f"{args.name!r}: a token name is 1-64 characters without spaces, ':' or '#'")
    path = tokens_file_for(args.auth_file)
    token = add_token(path, args.name)
    print(token)
    print(
        f"made the API token {args.name!r} in {path} (only its hash is stored: copy it now, it is not shown "
        "again). Send it as: Authorization: Bearer TOKEN",
        file=sys.stderr,
    )
    return 0


def revoke_token_cli(argv: list[str]) -> int:
    """``python -m search_app revoke-token NAME [--auth-file FILE]``."""
    parser = _parser(
        "revoke-token",
        "Revoke an API token: a running app refuses it from its next request.",
        "Example:\n  python -m search_app revoke-token kitchen-frame",
    )
    args = parser.parse_args(argv)
    path = tokens_file_for(args.auth_file)
    revoke_token(path, args.name)
    print(f"revoked the API token {args.name!r} in {path}", file=sys.stderr)
    return 0
