"""A real HTTP server speaking the OpenAI chat-completions protocol, answering from a script.

Each request is answered by the script: a list of :class:`Reply` consumed in order (the
last one repeats), or a function ``(request_json, number) -> Reply``. Every request is
recorded with its arrival time, so tests can check retries and waits.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str | None = None  # assistant message text (status 200)
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a hang past the client timeout)
    error: str = "scripted error"
    prompt_tokens: int = 1000
    completion_tokens: int = 300
    raw: bytes | None = None  # a body sent verbatim with status 200 (a proxy's error page)


def ok(value) -> Reply:
    """A 200 answer whose content is ``value`` as JSON (or verbatim if it is a string)."""
    return Reply(content=value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


class FakeOpenAI:
    def __init__(self, script):
        self.script = script
        self.requests: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _reply_for(self, request: dict) -> Reply:
        with self._lock:
            number = len(self.requests)
            self.requests.append((time.monotonic(), request))
        if callable(self.script):
            return self.script(request, number)
        return self.script[min(number, len(self.script) - 1)]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                request = json.loads(body)
                reply = fake._reply_for(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.raw is not None:
                    return self._send_raw(reply.raw)
                if reply.status != 200:
                    return self._send(
                        reply.status,
                        {"error": {"message": reply.error, "type": "error", "code": reply.status}},
                        reply.headers,
                    )
                self._send(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": request.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply.content},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": reply.prompt_tokens,
                            "completion_tokens": reply.completion_tokens,
                            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                        },
                    },
                    reply.headers,
                )

            def _send_raw(self, data: bytes):
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if data.startswith(b"<") else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        return Handler
