"""The login page, served in place of Gradio's own when login is on.

Gradio's login form (gradio 6) has no ``autocomplete`` attributes, so password managers guess, and it empties the
user name after a wrong password. This page has ``autocomplete="username"`` / ``"current-password"``, keeps the name
after a failure (only the password is emptied, and focused), says "wrong user name or password" in plain words, and
posts to Gradio's own ``/login`` route: the login itself, its cookie and the slow-down of repeated failures
(auth.LoginThrottle) stay exactly as they were. ``LoginPage`` is ASGI middleware that answers a plain visit to the
page (``GET /``) without a valid login cookie; every other request, and every logged-in visit, goes on to Gradio.
The app's page has a "Log out" link to Gradio's ``/logout`` (ui_layout.LOGOUT_HTML), which ends the session and
comes back here.
"""

from __future__ import annotations

import html
from http.cookies import CookieError, SimpleCookie

TITLE = "Photo search"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · {title}</title>
<style>
  :root {{ color-scheme: light; font-family: system-ui, sans-serif; }}
  body {{ margin: 0; background: #f4f4f5; color: #18181b; }}
  main {{ max-width: 380px; margin: 10vh auto; padding: 24px; background: #fff; border-radius: 12px;
         box-shadow: 0 1px 4px rgba(0, 0, 0, 0.15); }}
  h1 {{ font-size: 1.5em; margin: 0 0 0.3em; }}
  label {{ display: block; font-weight: 600; margin: 1em 0 0.3em; }}
  input {{ box-sizing: border-box; width: 100%; font: inherit; padding: 10px; border: 1px solid #71717a;
          border-radius: 6px; }}
  button {{ margin-top: 1.2em; width: 100%; font: inherit; font-weight: 600; padding: 10px; min-height: 44px;
           border: 0; border-radius: 6px; background: #1d4ed8; color: #fff; cursor: pointer; }}
  button:disabled {{ cursor: progress; }}
  :focus-visible {{ outline: 3px solid #1d4ed8; outline-offset: 2px; }}
  #error {{ color: #b91c1c; font-weight: 600; margin: 1em 0 0; }}
  @media (max-width: 420px) {{ main {{ margin: 0; border-radius: 0; min-height: 100vh; box-sizing: border-box; }} }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{message}</p>
<form id="login" method="post" action="login">
  <label for="username">Username</label>
  <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none"
         spellcheck="false" dir="auto" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <p id="error" role="alert" hidden></p>
  <button id="login_button" type="submit">Log in</button>
</form>
</main>
<script>
  const form = document.getElementById('login');
  const error = document.getElementById('error');
  const button = document.getElementById('login_button');
  const password = document.getElementById('password');
  form.addEventListener('submit', async (event) => {{
    event.preventDefault();
    button.disabled = true;
    button.textContent = 'Logging in…';
    let answer = null;
    try {{
      answer = await fetch('login', {{method: 'POST', body: new FormData(form), credentials: 'same-origin'}});
    }} catch (failure) {{
      answer = null;
    }}
    if (answer && answer.ok) {{ location.reload(); return; }}
    error.textContent = answer && answer.status === 400
      ? 'Wrong user name or password. Check them and try again.'
      : 'The server did not answer the login' + (answer ? ' (HTTP ' + answer.status + ')' : '') + '. Try again.';
    error.hidden = false;
    password.value = '';  // the user name stays as typed
    password.focus();
    button.disabled = false;
    button.textContent = 'Log in';
  }});
</script>
</body>
</html>
"""


def login_html(message: str) -> str:
    """The login page (``message``: plain text, e.g. what the library is)."""
    return PAGE.format(title=html.escape(TITLE), message=html.escape(message))


def _cookies(scope) -> dict[str, str]:
    jar = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed cookie header: treated as no login
                continue
    return {key: morsel.value for key, morsel in jar.items()}


def logged_in(scope) -> bool:
    """Whether the request carries a login cookie Gradio knows (the app's ``tokens``; names as Gradio sets them)."""
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if tokens is None or cookie_id is None:
        return False
    cookies = _cookies(scope)
    return any(
        cookies.get(name) in tokens for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}")
    )


class LoginPage:
    """ASGI middleware: a visit to the page without a valid login gets this module's login page."""

    def __init__(self, app, message: str = "Log in to search this photo library."):
        self.app = app
        self.body = login_html(message).encode("utf-8")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path not in ("", "/") or logged_in(scope):
            return await self.app(scope, receive, send)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(self.body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-frame-options", b"DENY"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self.body})
