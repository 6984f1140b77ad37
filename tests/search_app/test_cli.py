"""`python app.py` as a person runs it: --help, offline without a model, the tiny smoke mode, bad index."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from .conftest import REPO, free_port, new_home, user_environment, wait_for_server


@pytest.fixture
def stack():
    """Context managers entered by a test (a fresh HOME), exited after it."""
    with ExitStack() as entered:
        yield entered


def run_app(*args, env=None, timeout=120, home=None):
    """`python app.py ARGS` from the repo, in ``home`` or a fresh HOME (the user's settings only where ``env``
    gives them)."""
    with ExitStack() as stack:
        home = home or stack.enter_context(new_home())
        return subprocess.run(
            [sys.executable, "app.py", *args],
            cwd=REPO,
            env=user_environment(home, env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def test_help_lists_flags_env_vars_and_examples():
    result = run_app("--help")
    assert result.returncode == 0
    for text in [
        "--index",
        "--model",
        "--adapter",
        "--host",
        "--port",
        "--share",
        "--tiny",
        "MME5_MODEL",
        "Examples:",
        "python app.py --tiny",
    ]:
        assert text in result.stdout, text


@pytest.mark.slow  # runs the app in a subprocess
def test_offline_without_a_model_exits_fast_with_advice(tmp_path):
    started = time.monotonic()
    (tmp_path / "photos").mkdir()
    result = run_app("--index", str(tmp_path / "index"), "--photos", str(tmp_path / "photos"))
    assert time.monotonic() - started < 60
    assert result.returncode == 1 and result.stdout == ""
    assert "--model" in result.stderr and "python app.py --tiny" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())


@pytest.mark.server
def test_a_mistyped_index_is_an_error_that_names_it(tmp_path, tiny_mllama_dir, user_env):
    """Only an omitted --index serves the bundled samples; a named one that is missing is refused, nothing made."""
    work = Path(user_env["HOME"]) / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, str(REPO / "app.py"), "--index", "idx-typo", "--model", str(tiny_mllama_dir)],
        cwd=work,
        env=user_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"app: error: {work / 'idx-typo'}: no index there"), result.stderr
    assert "--photos DIR" in result.stderr and "indexing" not in result.stderr
    assert list(work.iterdir()) == []  # no idx-typo folder left behind


def test_a_broken_index_is_reported_not_served(tmp_path, tiny_mllama_dir):
    index = tmp_path / "index"
    index.mkdir()
    (index / "catalog.sqlite").write_bytes(b"this is not a database")
    result = run_app("--index", str(index), "--model", str(tiny_mllama_dir))
    assert result.returncode == 1 and result.stderr.startswith("app: error: ") and "Traceback" not in result.stderr


@pytest.mark.server  # starts python app.py and talks to it
def test_smoke_mode_builds_the_tiny_model_and_serves_the_sample_photos(tmp_path, stack):
    import httpx
    from gradio_client import Client

    port = free_port()
    log = tmp_path / "app.log"
    home = stack.enter_context(new_home())
    env = user_environment(home, {"MME5_MODEL": "tiny", "MME5_PORT": str(port)})  # the test is about them
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_for_server(process, f"http://127.0.0.1:{port}/", log)
        answer = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            text="a rocket launch", k=20, api_name="/search_text"
        )
        assert answer["total_indexed"] == 10
        assert {result["relpath"] for result in answer["results"]} >= {"space/rocket.jpg", "everyday/chelsea.jpg"}
        assert (home / ".cache" / "mme5-search" / "tiny-mllama" / "config.json").is_file()
        assert httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=5).status_code == 200
        from search_app.ui import SMOKE_NOTICE

        assert SMOKE_NOTICE in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text  # the page says it
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "smoke mode" in log.read_text()


def test_a_network_address_or_share_without_login_is_refused_with_advice(tmp_path, stack):
    home = stack.enter_context(new_home())
    for flags in (["--host", "0.0.0.0"], ["--share"], ["--host", "192.168.1.20", "--share"]):
        result = run_app(*flags, "--index", str(tmp_path / "index"), timeout=60, home=home)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "refusing to serve your photos without a login" in result.stderr
        for advice in ("python -m search_app add-user NAME", "--allow-anonymous", "MME5_AUTH=user:password"):
            assert advice in result.stderr
    assert not (tmp_path / "index").exists() and not (home / ".cache").exists()  # refused before any work


@pytest.mark.server  # starts python app.py and talks to it
def test_anonymous_exposure_warns_when_allowed_and_spaces_stay_public(tmp_path):
    env = {}
    # Both get past the check and stop at the missing index, which proves they were not refused.
    allowed = run_app("--host", "0.0.0.0", "--allow-anonymous", "--index", str(tmp_path / "a"), env=env)
    assert allowed.returncode == 1 and "WARNING: serving WITHOUT LOGIN on --host 0.0.0.0" in allowed.stderr
    spaces = run_app("--index", str(tmp_path / "b"), env={**env, "SPACE_ID": "someone/photos"})
    assert spaces.returncode == 1 and "this Space is public" in spaces.stderr and "MME5_AUTH" in spaces.stderr
    secret = run_app("--host", "0.0.0.0", "--index", str(tmp_path / "c"), env={**env, "MME5_AUTH": "alice:s3cret-pw"})
    assert secret.returncode == 1 and "refusing" not in secret.stderr and "WARNING" not in secret.stderr
    bad_secret = run_app("--host", "0.0.0.0", env={**env, "MME5_AUTH": "no-colon-here"})
    assert bad_secret.returncode == 1 and bad_secret.stderr.startswith("app: error: MME5_AUTH must be user:password")


@pytest.mark.server  # starts python app.py and talks to it
def test_zero_gpu_never_indexes_at_start_up(tmp_path):
    env = {"SPACE_ID": "someone/photos", "SPACES_ZERO_GPU": "true"}
    result = run_app("--index", str(tmp_path / "index"), env=env)
    assert result.returncode == 1 and "on ZeroGPU the app must not index photos at start-up" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "index").exists()


def add_user_on_a_terminal(users, *answers):
    """`python -m search_app add-user alice` on a real pseudo-terminal; returns (exit status, everything shown)."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, as in a shell
        os.chdir(REPO)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "search_app", "add-user", "alice", "--auth-file", str(users)],
            {**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        if pending and shown.endswith(b": "):  # a prompt waits (echo is off by now: getpass sets it first)
            os.write(fd, pending.pop(0).encode() + b"\n")
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_add_user_asks_twice_never_echoes_and_writes_a_private_hash_file(tmp_path):
    import stat

    from search_app.auth import Authenticator, read_users

    users = tmp_path / "conf" / "users"
    code, shown = add_user_on_a_terminal(users, "a-long-secret", "a-long-secret")
    assert code == 0, shown
    assert "Password for alice:" in shown and "Same password again:" in shown and "a-long-secret" not in shown
    assert stat.S_IMODE(users.stat().st_mode) == 0o600 and "a-long-secret" not in users.read_text()
    hashes = read_users(users)
    assert list(hashes) == ["alice"] and hashes["alice"].startswith("$argon2id$")
    checker = Authenticator(hashes)
    assert checker.check("alice", "a-long-secret") and not checker.check("alice", "a-long-secreT")
    assert not checker.check("bob", "a-long-secret")
    code, shown = add_user_on_a_terminal(users, "one-password", "another-password")
    assert code == 1 and "the two passwords differ; nothing was changed" in shown and "Traceback" not in shown
    assert read_users(users) == hashes
