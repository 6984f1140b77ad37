"""Host and Origin check: the app answers only requests addressed to a name it is served under.

A DNS-rebinding page (evil.example, re-pointed at 127.0.0.1 after it loaded in the user's browser) reaches the
app from the user's own machine with ``Host: evil.example``; without this check it could read the whole library
of an app that serves loopback without a login. The allowed names are the loopback names, every IP address
written as such (a rebinding page always has a domain name), the ``--host`` value, this machine's names when
``--host`` is a wildcard (0.0.0.0, ::), the Space's host on Hugging Face Spaces (SPACE_HOST), *.gradio.live with
``--share``, and the names given with ``--allowed-host`` / MME5_ALLOWED_HOSTS. An ``Origin`` header, when a
browser sends one, must name an allowed host too (a page elsewhere may not drive the app through the user's
browser).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from typing import Iterable
from urllib.parse import urlsplit

from mme5.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SHARE_SUFFIX = ".gradio.live"
ADVICE = (
    "if you reach the app under this name on purpose, start it with --allowed-host {name} "
    "(or MME5_ALLOWED_HOSTS={name})"
)


def allowed_hosts(host: str, extra: Iterable[str] = (), share: bool = False, environ=os.environ) -> "HostAllowList":
    """The allow-list for an app started with ``--host host`` and ``--allowed-host`` names ``extra``."""
    names = {*LOOPBACK_NAMES, *(name.strip() for name in extra if name.strip())}
    names |= set(Settings.from_env(environ).allowed_hosts or ())
    if environ.get("SPACE_HOST"):  # set by Hugging Face Spaces: user-space.hf.space
        names.add(environ["SPACE_HOST"])
    if host in WILDCARD_HOSTS:  # reachable from the network: under this machine's names
        machine = socket.gethostname()
        names |= {machine, socket.getfqdn(), f"{machine.split('.')[0]}.local"}  # .local: the mDNS name
    else:
        names.add(host)
    return HostAllowList(names, share)


class HostAllowList:
    def __init__(self, names: Iterable[str], share: bool = False):
        self.names = {name.lower().rstrip(".") for name in names if name}
        self.share = share

    def allows(self, host: str) -> bool:
        """``host`` is a Host header's or an Origin's host name, without port."""
        host = host.lower().rstrip(".")
        if not host:
            return False
        try:
            ipaddress.ip_address(host.strip("[]"))
            return True
        except ValueError:
            pass
        if host in self.names or host.endswith(".localhost"):  # *.localhost always resolves to loopback
            return True
        return self.share and host.endswith(SHARE_SUFFIX)


def host_name(header: str) -> str:
    """The host of a Host header value (``name:port``, ``[::1]:7860``)."""
    return urlsplit("//" + header).hostname or ""


class HostGuard:
    """ASGI middleware: 400 for a Host header, 403 for an Origin header, naming no allowed host."""

    def __init__(self, app, allow: HostAllowList):
        self.app = app
        self.allow = allow

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {
            name: value.decode("latin-1") for name, value in scope.get("headers", []) if name in (b"host", b"origin")
        }
        problem = None
        try:
            host = host_name(headers.get(b"host", ""))
        except ValueError:
            host = ""
        if not self.allow.allows(host):
            problem = (
                400,
                f"This app does not answer requests for the host name {host or '(none)'!r}: "
                + ADVICE.format(name=host or "NAME")
                + ".",
            )
        elif b"origin" in headers:
            origin = headers[b"origin"]
            try:
                origin_host = urlsplit(origin).hostname or ""
            except ValueError:
                origin_host = ""
            if not self.allow.allows(origin_host):
                problem = (
                    403,
                    f"This app does not answer requests sent by pages of {origin!r}: "
                    + ADVICE.format(name=origin_host or "NAME")
                    + ".",
                )
        if problem is None:
            return await self.app(scope, receive, send)
        status, message = problem
        log.warning("refused a request to %s: %s", scope.get("path"), message)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        body = message.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
