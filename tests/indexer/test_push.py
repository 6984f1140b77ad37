"""`python -m indexer push` through the real huggingface_hub client against a scripted Hub on 127.0.0.1.

The server speaks the few HTTP calls an upload makes (whoami, create repo, preupload, tree, commit) and
answers every file as a "regular" (inline) upload, so the commit carries the files themselves: the test
sees exactly what reached the Hub. It stops with the test; it is no stand-in for the real Hub's checks.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import REPO

HUB_MODEL = "someone/tiny-mllama"


class ScriptedHub(BaseHTTPRequestHandler):
    """One Hub account ``someone``; ``stranger/*`` repos belong to someone else (403 like the real Hub)."""

    calls: list = []
    files: dict = {}
    repos: dict = {}

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status: int, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        self.calls.append(("GET", self.path))
        if self.headers.get("Authorization") != "Bearer hf_test_token":
            return self._reply(401, {"error": "Invalid credentials in Authorization header"})
        if self.path.startswith("/api/whoami"):
            return self._reply(200, {"name": "someone", "type": "user", "auth": {"accessToken": {"role": "write"}}})
        if "/tree/" in self.path:
            return self._reply(200, [])  # a new repo: nothing to delete
        return self._reply(404, {"error": f"not scripted: GET {self.path}"})

    def do_POST(self):
        body = self._body()
        self.calls.append(("POST", self.path))
        if self.path == "/api/repos/create":
            request = json.loads(body)
            if request.get("organization") == "stranger" or request["name"].startswith("stranger/"):
                return self._reply(403, {"error": "You don't have the rights to create a dataset under the "
                                                  "namespace \"stranger\""})
            self.repos[f"{request.get('organization') or 'someone'}/{request['name']}"] = request
            return self._reply(200, {"url": f"http://127.0.0.1/datasets/someone/{request['name']}"})
        if self.path == "/api/validate-yaml":  # the client checks the dataset card's front matter first
            return self._reply(200, {"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in files]})
        if "/commit/" in self.path:
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return self._reply(200, {"commitUrl": "http://127.0.0.1/datasets/someone/photos/commit/" + "b" * 40,
                                     "commitOid": "b" * 40})
        return self._reply(404, {"error": f"not scripted: POST {self.path}"})


@pytest.fixture
def scripted_hub():
    ScriptedHub.calls, ScriptedHub.files, ScriptedHub.repos = [], {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tiny_index(tiny_mllama, tmp_path_factory):
    from PIL import Image

    from indexer import build_index

    photos = tmp_path_factory.mktemp("publisher-photos")
    for number, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        (photos / "trip").mkdir(exist_ok=True)
        Image.new("RGB", (64, 48 + number), colour).save(photos / "trip" / f"p{number}.jpg", quality=90)
    index = tmp_path_factory.mktemp("publisher-index") / "idx"
    summary = build_index([photos], index, tiny_mllama, show_progress=False)
    assert summary.added == 3
    return photos, index


def push(index, *args, endpoint: str, token: str | None = "hf_test_token"):
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_HOME": str(index.parent / "hf-home"),
           "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_TOKEN", None)
    token_args = ["--token", token] if token else []
    return subprocess.run([sys.executable, "-m", "indexer", "push", "--index", str(index), "--quiet", *token_args,
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_push_uploads_the_prepared_dataset_through_the_hub_api(tiny_index, scripted_hub):
    photos, index = tiny_index
    result = push(index, "--repo", "someone/photos", "--private", "--model-id", HUB_MODEL, endpoint=scripted_hub)
    assert result.returncode == 0, result.stderr
    assert "published: http://127.0.0.1/datasets/someone/photos/commit/" in result.stdout
    assert "python app.py --index hf://datasets/someone/photos" in result.stdout
    created = ScriptedHub.repos["someone/photos"]
    assert created["type"] == "dataset" and "private" in (created.get("visibility"), created.get("private") and "private")
    paths = [path for _, path in ScriptedHub.calls]
    assert any(path.startswith("/api/datasets/someone/photos/preupload/main") for path in paths)
    assert any(path.startswith("/api/datasets/someone/photos/commit/main") for path in paths)
    uploaded = ScriptedHub.files
    assert {"catalog.sqlite", "vectors.faiss", "README.md"} <= set(uploaded)
    assert len([name for name in uploaded if name.startswith("previews/")]) == 3
    assert not any(name.startswith("originals/") for name in uploaded)
    for name, data in uploaded.items():
        assert str(photos).encode() not in data and str(index).encode() not in data, name


def test_push_errors_are_one_line_with_what_to_do(tiny_index, scripted_hub, monkeypatch, capsys, tmp_path):
    """In this process (the same CLI runner, huggingface_hub configured as HF_ENDPOINT / HF_HOME would)."""
    from indexer.__main__ import main

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    _, index = tiny_index
    cases = [
        (dict(token=None), "not logged in to Hugging Face: run `hf auth login`"),
        (dict(token="hf_wrong"), "token was refused"),
        (dict(repo="stranger/photos"), "stranger/photos: no write access: the repo belongs to someone else"),
        (dict(endpoint="http://127.0.0.1:9"), "cannot reach the Hugging Face Hub"),
        (dict(model=None), "--model-id ORG/NAME"),
        (dict(repo="no-slash"), "--repo 'no-slash': not a repo name"),  # built from a local model folder: a Space could not load it
    ]
    for case, expected in cases:
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", case.get("endpoint", scripted_hub))
        token = case.get("token", "hf_test_token")
        model = case.get("model", HUB_MODEL)
        code = main(["push", "--index", str(index), "--repo", case.get("repo", "someone/photos"), "--quiet",
                     *(["--token", token] if token else []), *(["--model-id", model] if model else [])])
        stderr = capsys.readouterr().err
        assert code == 1, (case, stderr)
        assert stderr.startswith("indexer: error: ") and expected in stderr, (case, stderr)
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not ScriptedHub.files  # nothing was committed by any of them

    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", scripted_hub)
    assert main(["push", "--index", str(index), "--repo", "someone/photos", "--originals", "--quiet", "--token",
                 "hf_test_token", "--model-id", HUB_MODEL]) == 0
    photos, _ = tiny_index
    for number in range(3):  # the originals, read through the staging folder's links
        assert ScriptedHub.files[f"originals/1/trip/p{number}.jpg"] == (photos / "trip" / f"p{number}.jpg").read_bytes()


def test_push_help_has_examples():
    result = subprocess.run([sys.executable, "-m", "indexer", "push", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for text in ("--repo", "--private", "--originals", "--token", "--model-id", "--prepare-only", "Examples:",
                 "hf auth login", "hf://datasets/"):
        assert text in result.stdout, text
