"""`python -m indexer push` through the real huggingface_hub client against a scripted Hub on 127.0.0.1.

The server keeps a repo's files and speaks the HTTP calls an upload makes: whoami, create repo, tree (the
repo's files), preupload (binary files are "lfs", text "regular", as the real Hub answers), the Git LFS
batch API with the basic transfer (an upload address on the same server, the PUT, the verify call) and
commit (inline files, LFS pointers, deletions). It can answer chosen commits with a 500, and it stops with
the test; it is no stand-in for the real Hub's checks.

huggingface_hub 2.4 picks Xet storage on the client side whenever hf_xet is installed (``is_xet_available``:
no server negotiation), so the pushes run with HF_HUB_DISABLE_XET=1 to take the LFS path; the server answers
any Xet token request 404 and the tests check none came.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import REPO

HUB_MODEL = "someone/tiny-mllama"
TOKEN = "hf_test_token"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ScriptedHub(BaseHTTPRequestHandler):
    """One Hub account ``someone``; ``stranger/*`` repos belong to someone else (403 like the real Hub).

    State (class attributes, reset per test): ``tree`` maps "USER/NAME" to {path: (bytes, stored in LFS)};
    ``storage`` the LFS objects by sha256; ``puts`` the LFS PUT bodies in order; ``commits`` one dict per
    accepted commit (repo, summary, lfs {path: sha256}, regular {path: bytes}, deleted [paths]);
    ``fail_commits`` the numbers (1-based, counting every commit request) answered 500."""

    lock = threading.Lock()
    calls: list = []
    repos: dict = {}
    tree: dict = {}
    storage: dict = {}
    puts: list = []
    commits: list = []
    fail_commits: set = set()
    commit_requests = 0

    @classmethod
    def reset(cls) -> None:
        cls.calls, cls.repos, cls.tree, cls.storage, cls.puts, cls.commits = [], {}, {}, {}, [], []
        cls.fail_commits, cls.commit_requests = set(), 0

    @classmethod
    def files(cls, repo: str = "someone/photos") -> dict[str, bytes]:
        return {path: data for path, (data, _) in cls.tree.get(repo, {}).items()}

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status: int, payload=None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._reply(401, {"error": "Invalid credentials in Authorization header"})
        return False

    def do_GET(self):
        self.calls.append(("GET", self.path))
        if not self._authorized():
            return
        if self.path.startswith("/api/whoami"):
            return self._reply(200, {"name": "someone", "type": "user", "auth": {"accessToken": {"role": "write"}}})
        tree = re.match(r"/api/datasets/([^/]+/[^/]+)/tree/main(\?|$)", self.path)
        if tree:  # recursive listing, one page
            with self.lock:
                files = sorted(self.tree.get(tree.group(1), {}).items())
            return self._reply(
                200,
                [
                    {
                        "type": "file",
                        "path": path,
                        "size": len(data),
                        "oid": _git_oid(data),
                        **({"lfs": {"oid": sha256(data), "size": len(data), "pointerSize": 134}} if lfs else {}),
                    }
                    for path, (data, lfs) in files
                ],
            )
        info = re.match(r"/api/datasets/([^/]+/[^/]+)/revision/main(\?|$)", self.path)
        if info:  # asked after a commit with nothing to change: the head commit
            heads = [number for number, commit in enumerate(self.commits, 1) if commit["repo"] == info.group(1)]
            return self._reply(200, {"id": info.group(1), "sha": f"{heads[-1]:040x}"})
        return self._reply(404, {"error": f"not scripted: GET {self.path}"})  # a Xet token request too

    def do_PUT(self):
        body = self._body()
        self.calls.append(("PUT", self.path))
        upload = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", self.path)
        if not upload or sha256(body) != upload.group(1):
            return self._reply(400, {"error": "the uploaded bytes do not match the object id"})
        with self.lock:
            self.storage[upload.group(1)] = body
            self.puts.append(body)
        return self._reply(200)

    def do_POST(self):
        body = self._body()
        self.calls.append(("POST", self.path))
        if self.path == "/lfs-verify":
            request = json.loads(body)
            found = self.storage.get(request["oid"])
            return self._reply(200 if found is not None and len(found) == request["size"] else 404, {})
        if not self._authorized():
            return
        if self.path == "/api/repos/create":
            request = json.loads(body)
            if request.get("organization") == "stranger" or request["name"].startswith("stranger/"):
                return self._reply(
                    403, {"error": 'You don\'t have the rights to create a dataset under the namespace "stranger"'}
                )
            repo = f"{request.get('organization') or 'someone'}/{request['name']}"
            self.repos[repo] = request
            with self.lock:
                self.tree.setdefault(repo, {})
            return self._reply(200, {"url": f"http://127.0.0.1/datasets/{repo}"})
        if self.path == "/api/validate-yaml":  # the client checks the dataset card's front matter first
            return self._reply(200, {"errors": [], "warnings": []})
        preupload = re.match(r"/api/datasets/([^/]+/[^/]+)/preupload/main", self.path)
        if preupload:  # binary files (a NUL in the sample) go through LFS; the oid of a file already there
            with self.lock:
                tree = dict(self.tree.get(preupload.group(1), {}))
            answers = []
            for item in json.loads(body)["files"]:
                lfs = b"\0" in base64.b64decode(item["sample"]) or item["size"] > 10_000_000
                answer = {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
                if item["path"] in tree:
                    data, stored_lfs = tree[item["path"]]
                    answer["oid"] = sha256(data) if stored_lfs else _git_oid(data)
                answers.append(answer)
            return self._reply(200, {"files": answers})
        batch = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", self.path)
        if batch:
            request = json.loads(body)
            assert request["operation"] == "upload" and "basic" in request["transfers"], request
            base = f"http://{self.headers['Host']}"
            objects = []
            for item in request["objects"]:
                answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
                if item["oid"] not in self.storage:  # an object the Hub has already is not sent again
                    answer["actions"] = {
                        "upload": {"href": f"{base}/lfs-upload/{item['oid']}"},
                        "verify": {"href": f"{base}/lfs-verify"},
                    }
                objects.append(answer)
            return self._reply(200, {"transfer": "basic", "objects": objects})
        commit = re.match(r"/api/datasets/([^/]+/[^/]+)/commit/main", self.path)
        if commit:
            return self._commit(commit.group(1), [json.loads(line) for line in body.decode().splitlines()])
        return self._reply(404, {"error": f"not scripted: POST {self.path}"})

    def _commit(self, repo: str, items: list) -> None:
        """All or nothing, like a Git commit: an LFS pointer to bytes never uploaded or the deletion of a file
        that is not there refuses the whole commit."""
        with self.lock:
            ScriptedHub.commit_requests += 1
            if self.commit_requests in self.fail_commits:
                return self._reply(
                    500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"}
                )
            tree = dict(self.tree.get(repo, {}))
            record = {"repo": repo, "summary": None, "lfs": {}, "regular": {}, "deleted": []}
            for item in items:
                key, value = item["key"], item["value"]
                if key == "header":
                    record["summary"] = value["summary"]
                elif key == "file":
                    tree[value["path"]] = (base64.b64decode(value["content"]), False)
                    record["regular"][value["path"]] = tree[value["path"]][0]
                elif key == "lfsFile":
                    if value["oid"] not in self.storage:
                        return self._reply(422, {"error": f"LFS pointer to a missing object: {value['path']}"})
                    tree[value["path"]] = (self.storage[value["oid"]], True)
                    record["lfs"][value["path"]] = value["oid"]
                elif key == "deletedFile":
                    if tree.pop(value["path"], None) is None:
                        return self._reply(404, {"error": f"A file with this name doesn't exist: {value['path']}"})
                    record["deleted"].append(value["path"])
                else:
                    return self._reply(400, {"error": f"not scripted: commit item {key}"})
            self.tree[repo] = tree
            self.commits.append(record)
            oid = f"{len(self.commits):040x}"
        return self._reply(200, {"commitUrl": f"http://127.0.0.1/datasets/{repo}/commit/{oid}", "commitOid": oid})


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture
def scripted_hub():
    ScriptedHub.reset()
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def folder_files(folder: Path) -> dict[str, bytes]:
    """A prepared upload folder's files by repo path (originals read through their links)."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


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


def push(index, *args, endpoint: str, token: str | None = TOKEN):
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(index.parent / "hf-home"),
        "HF_HUB_DISABLE_XET": "1",
    }  # the LFS path (see the module's docstring)
    env.pop("HF_TOKEN", None)
    token_args = ["--token", token] if token else []
    return subprocess.run(
        [sys.executable, "-m", "indexer", "push", "--index", str(index), "--quiet", *token_args, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def prepared_files(index, folder: Path, **options) -> dict[str, bytes]:
    """What a push of ``index`` uploads, prepared the same way into ``folder``."""
    from indexer.publish import prepare_push

    prepare_push(index, folder, model_id=HUB_MODEL, show_progress=False, **options)
    return folder_files(folder)


def no_xet_requests() -> bool:
    return not any("xet" in path.lower() for _, path in ScriptedHub.calls)


def test_push_uploads_the_prepared_dataset_through_the_hub_api(tiny_index, scripted_hub, tmp_path):
    photos, index = tiny_index
    result = push(index, "--repo", "someone/photos", "--private", "--model-id", HUB_MODEL, endpoint=scripted_hub)
    assert result.returncode == 0, result.stderr
    assert "published: http://127.0.0.1/datasets/someone/photos/commit/" in result.stdout
    assert "python app.py --index hf://datasets/someone/photos" in result.stdout
    created = ScriptedHub.repos["someone/photos"]
    assert created["type"] == "dataset" and "private" in (
        created.get("visibility"),
        created.get("private") and "private",
    )
    uploaded = ScriptedHub.files()
    assert uploaded == prepared_files(index, tmp_path / "expected")  # every file, byte for byte, nothing else
    assert {"catalog.sqlite", "vectors.faiss", "README.md"} <= set(uploaded)
    assert len([name for name in uploaded if name.startswith("previews/")]) == 3
    assert not any(name.startswith("originals/") for name in uploaded)
    for name, data in uploaded.items():
        assert str(photos).encode() not in data and str(index).encode() not in data, name
    # the binary files went through the LFS batch API: one PUT each, the commits name them by sha256
    binary = {name for name, data in uploaded.items() if b"\0" in data[:512]}
    assert binary == set(uploaded) - {"README.md"}
    assert sorted(sha256(body) for body in ScriptedHub.puts) == sorted(sha256(uploaded[name]) for name in binary)
    committed = {path: oid for commit in ScriptedHub.commits for path, oid in commit["lfs"].items()}
    assert committed == {name: sha256(uploaded[name]) for name in binary}
    assert [set(commit["regular"]) for commit in ScriptedHub.commits] == [set(), {"README.md"}]
    last = ScriptedHub.commits[-1]  # previews first, then the catalog's commit
    assert (
        set(last["lfs"]) == {"catalog.sqlite", "vectors.faiss"}
        and last["summary"] == "Publish a photo index of 3 photos"
    )
    assert all(path.startswith("previews/") for path in ScriptedHub.commits[0]["lfs"])
    assert ("POST", "/lfs-verify") in ScriptedHub.calls and no_xet_requests()


@pytest.fixture
def hub_here(scripted_hub, monkeypatch, tmp_path):
    """huggingface_hub in this process set up as HF_ENDPOINT, HF_HUB_DISABLE_XET=1 and no stored token would."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", scripted_hub)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return scripted_hub


def publish(index, *args) -> int:
    from indexer.__main__ import main

    return main(
        [
            "push",
            "--index",
            str(index),
            "--repo",
            "someone/photos",
            "--quiet",
            "--token",
            TOKEN,
            "--model-id",
            HUB_MODEL,
            *args,
        ]
    )


def add_photos(photos: Path, numbers) -> None:
    from PIL import Image

    (photos / "trip").mkdir(parents=True, exist_ok=True)
    for number in numbers:
        Image.new("RGB", (64, 40 + number), (20 * number, 255 - 30 * number, 90)).save(
            photos / "trip" / f"p{number}.jpg", quality=90
        )


def first_push_in_chunks_of_two(embedder, monkeypatch, tmp_path):
    """(photos, index): three photos indexed and pushed with two files per commit."""
    from indexer import build_index

    monkeypatch.setattr("indexer.hub.COMMIT_FILES", 2)
    photos, index = tmp_path / "photos", tmp_path / "index"
    add_photos(photos, range(3))
    build_index([photos], index, embedder, show_progress=False)
    assert publish(index) == 0
    return photos, index


def test_push_commits_previews_in_chunks_the_catalog_last_and_deletes_what_is_gone(
    tiny_mllama, hub_here, monkeypatch, tmp_path
):
    from indexer import build_index

    photos, index = first_push_in_chunks_of_two(tiny_mllama, monkeypatch, tmp_path)
    commits = ScriptedHub.commits
    assert [len(commit["lfs"]) for commit in commits] == [2, 1, 2]
    assert all(path.startswith("previews/") for commit in commits[:2] for path in commit["lfs"])
    assert set(commits[2]["lfs"]) == {"catalog.sqlite", "vectors.faiss"} and set(commits[2]["regular"]) == {"README.md"}
    first = ScriptedHub.files()
    assert first == prepared_files(index, tmp_path / "first")

    (photos / "trip" / "p0.jpg").unlink()  # gone from the index: its preview goes from the repo too
    build_index([photos], index, tiny_mllama, show_progress=False, prune=True)
    assert publish(index) == 0
    second = prepared_files(index, tmp_path / "second")
    assert ScriptedHub.files() == second
    gone = set(first) - set(second)
    assert len(gone) == 1 and gone.pop().startswith("previews/")
    assert len(commits) == 4  # nothing new to upload: only the catalog's commit, with the deletion
    assert commits[3]["deleted"] == sorted(set(first) - set(second)) and set(commits[3]["lfs"]) == {
        "catalog.sqlite",
        "vectors.faiss",
    }

    puts = len(ScriptedHub.puts)  # the same push again: nothing to upload, no commit
    assert publish(index) == 0
    assert len(commits) == 4 and len(ScriptedHub.puts) == puts and ScriptedHub.files() == second
    assert no_xet_requests()


def test_a_failed_push_leaves_the_old_index_served_and_the_same_command_resumes(
    tiny_mllama, hub_here, monkeypatch, capsys, tmp_path
):
    from indexer import build_index

    photos, index = first_push_in_chunks_of_two(tiny_mllama, monkeypatch, tmp_path)
    first = ScriptedHub.files()
    add_photos(photos, range(3, 6))
    build_index([photos], index, tiny_mllama, show_progress=False)
    capsys.readouterr()

    ScriptedHub.fail_commits = {ScriptedHub.commit_requests + 2}  # the second chunk of previews fails
    commits, puts = len(ScriptedHub.commits), len(ScriptedHub.puts)
    assert publish(index) == 1
    stderr = capsys.readouterr().err
    assert "%|" not in stderr, stderr  # --quiet: no progress bars, huggingface_hub's neither
    error = stderr.strip().splitlines()[-1]
    assert error.startswith("indexer: error: ") and "Traceback" not in stderr, stderr
    assert "the Hub refused the request" in error and "2 of 3 new files were committed" in error, stderr
    assert "run the same command again" in error
    during = ScriptedHub.files()
    assert {path: during[path] for path in first} == first  # the old catalog and every file it names, unchanged
    assert len(during) == len(first) + 2 and len(ScriptedHub.commits) == commits + 1
    failed_puts = ScriptedHub.puts[puts:]

    assert publish(index) == 0
    final = prepared_files(index, tmp_path / "final")
    assert ScriptedHub.files() == final
    rerun = ScriptedHub.commits[commits + 1 :]
    missing = set(final) - set(during) - {"catalog.sqlite", "vectors.faiss", "README.md"}
    assert len(rerun) == 2 and set(rerun[0]["lfs"]) == missing and len(missing) == 1  # only what was missing
    assert set(rerun[1]["lfs"]) == {"catalog.sqlite", "vectors.faiss"}  # and the catalog last
    # every object went over the wire once (the failed chunk's preview had reached LFS storage, the Hub kept it)
    received = [sha256(body) for body in ScriptedHub.puts]
    assert len(received) == len(set(received))
    rerun_puts = {sha256(body) for body in ScriptedHub.puts[puts + len(failed_puts) :]}
    assert rerun_puts == {sha256(final["catalog.sqlite"]), sha256(final["vectors.faiss"])}
    lfs_files = {sha256(data) for state in (first, final) for name, data in state.items() if name != "README.md"}
    assert set(received) == lfs_files  # every byte received is a prepared file's
    assert no_xet_requests()


def test_push_errors_are_one_line_with_what_to_do(tiny_index, hub_here, monkeypatch, capsys):
    """In this process (the same CLI runner, huggingface_hub configured as HF_ENDPOINT / HF_HOME would)."""
    from indexer.__main__ import main

    scripted_hub = hub_here
    _, index = tiny_index
    cases = [
        (dict(token=None), "not logged in to Hugging Face: run `hf auth login`"),
        (dict(token="hf_wrong"), "token was refused"),
        (dict(repo="stranger/photos"), "stranger/photos: no write access: the repo belongs to someone else"),
        (dict(endpoint="http://127.0.0.1:9"), "cannot reach the Hugging Face Hub"),
        (dict(model=None), "--model-id ORG/NAME"),
        (
            dict(repo="no-slash"),
            "--repo 'no-slash': not a repo name",
        ),  # built from a local model folder: a Space could not load it
    ]
    for case, expected in cases:
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", case.get("endpoint", scripted_hub))
        token = case.get("token", TOKEN)
        model = case.get("model", HUB_MODEL)
        code = main(
            [
                "push",
                "--index",
                str(index),
                "--repo",
                case.get("repo", "someone/photos"),
                "--quiet",
                *(["--token", token] if token else []),
                *(["--model-id", model] if model else []),
            ]
        )
        stderr = capsys.readouterr().err
        assert code == 1, (case, stderr)
        assert stderr.startswith("indexer: error: ") and expected in stderr, (case, stderr)
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not ScriptedHub.commits  # nothing was committed by any of them

    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", scripted_hub)
    assert (
        main(
            [
                "push",
                "--index",
                str(index),
                "--repo",
                "someone/photos",
                "--originals",
                "--quiet",
                "--token",
                TOKEN,
                "--model-id",
                HUB_MODEL,
            ]
        )
        == 0
    )
    photos, _ = tiny_index
    for number in range(3):  # the originals, read through the staging folder's links
        assert (
            ScriptedHub.files()[f"originals/1/trip/p{number}.jpg"] == (photos / "trip" / f"p{number}.jpg").read_bytes()
        )


def test_upload_plan_skips_what_the_repo_has_and_lists_what_it_no_longer_needs(tmp_path):
    """Previews are named by content (same name and size: the same); originals by place (compared by hash)."""
    from huggingface_hub import RepoFile

    from indexer.hub import upload_plan

    files = {
        "previews/ab/ab1.jpg": b"\xff\xd8preview one",
        "previews/cd/cd2.jpg": b"\xff\xd8preview two",
        "originals/1/a.jpg": b"\xff\xd8original a",
        "originals/1/b.jpg": b"\xff\xd8original b",
        "originals/1/c.txt": b"notes",
        "catalog.sqlite": b"SQLite format 3\0",
    }
    for path, data in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)

    def remote(path, data, lfs=True):
        return RepoFile(
            path=path,
            size=len(data),
            oid=_git_oid(data),
            lfs={"oid": sha256(data), "size": len(data), "pointerSize": 134} if lfs else None,
        )

    entries = [
        remote("previews/ab/ab1.jpg", files["previews/ab/ab1.jpg"]),  # there: skipped
        remote("previews/cd/cd2.jpg", b"\xff\xd8other size"),  # another preview size: sent again
        remote("originals/1/a.jpg", files["originals/1/a.jpg"]),  # the same bytes: skipped
        remote("originals/1/b.jpg", b"\xff\xd8original B"),  # edited in place, same size: sent again
        remote("originals/1/c.txt", files["originals/1/c.txt"], lfs=False),  # in Git, same blob: skipped
        remote("previews/ef/ef3.jpg", b"\xff\xd8a photo since deleted"),
        remote("originals/2/gone.jpg", b"\xff\xd8gone"),
        remote("catalog.sqlite", b"SQLite format 3\0old"),
        remote(".gitattributes", b"*.jpg lfs", lfs=False),
    ]
    missing, stale = upload_plan(tmp_path, {entry.path: entry for entry in entries})
    assert missing == ["originals/1/b.jpg", "previews/cd/cd2.jpg"]
    assert stale == ["originals/2/gone.jpg", "previews/ef/ef3.jpg"]  # the catalog's own files are replaced, not here


def test_push_help_has_examples():
    result = subprocess.run(
        [sys.executable, "-m", "indexer", "push", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for text in (
        "--repo",
        "--private",
        "--originals",
        "--token",
        "--model-id",
        "--prepare-only",
        "Examples:",
        "hf auth login",
        "hf://datasets/",
    ):
        assert text in result.stdout, text


def test_an_adapter_goes_in_the_catalogs_commit_and_a_changed_one_replaces_it(tiny_mllama_dir, hub_here, tmp_path):
    """The adapter's files are uploaded with the catalog (never served apart); another adapter's files replace
    them in that commit, an index with none deletes them."""
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import MllamaForConditionalGeneration

    from indexer import build_index
    from mme5 import load_embedder

    from ..mme5.test_loading import lora_adapter

    first = lora_adapter(MllamaForConditionalGeneration.from_pretrained(tiny_mllama_dir), tmp_path / "lora1")
    second = tmp_path / "lora2"  # another adapter, saved the older way (adapter_model.bin)
    second.mkdir()
    shutil.copyfile(first / "adapter_config.json", second / "adapter_config.json")
    torch.save(
        {name: value * 2 for name, value in load_file(first / "adapter_model.safetensors").items()},
        second / "adapter_model.bin",
    )
    photos, index = tmp_path / "photos", tmp_path / "index"
    add_photos(photos, range(3))

    def publish_with(adapter) -> tuple[dict, dict]:
        shutil.rmtree(index, ignore_errors=True)
        embedder = load_embedder(str(tiny_mllama_dir), device="cpu", adapter=adapter and str(adapter))
        build_index([photos], index, embedder, show_progress=False)
        assert publish(index) == 0
        expected = prepared_files(index, tmp_path / f"expected-{len(ScriptedHub.commits)}")
        assert ScriptedHub.files() == expected
        return expected, ScriptedHub.commits[-1]

    files, last = publish_with(first)
    adapter_files = {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"}
    assert {name for name in files if name.startswith("adapter/")} == adapter_files
    assert files["adapter/adapter_model.safetensors"] == (first / "adapter_model.safetensors").read_bytes()
    assert set(last["lfs"]) == {"catalog.sqlite", "vectors.faiss", "adapter/adapter_model.safetensors"}
    assert set(last["regular"]) == {"README.md", "adapter/adapter_config.json"}
    assert not any(
        path.startswith("adapter/")
        for commit in ScriptedHub.commits[:-1]
        for path in [*commit["lfs"], *commit["regular"]]
    )  # previews first, the adapter with the catalog

    commits = len(ScriptedHub.commits)
    files, last = publish_with(second)
    assert len(ScriptedHub.commits) == commits + 1  # the same photos: only the catalog's commit
    assert {name for name in files if name.startswith("adapter/")} == {
        "adapter/adapter_config.json",
        "adapter/adapter_model.bin",
    }
    assert "adapter/adapter_model.bin" in last["lfs"] and last["deleted"] == ["adapter/adapter_model.safetensors"]

    files, last = publish_with(None)
    assert not any(name.startswith("adapter/") for name in files)
    assert last["deleted"] == ["adapter/adapter_config.json", "adapter/adapter_model.bin"]
    assert no_xet_requests()
