"""`python app.py` as a person runs it: --help, offline without a model, the tiny smoke mode, bad index."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from .conftest import REPO, free_port, wait_for_server


def run_app(*args, env=None, timeout=120):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "app.py", *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_flags_env_vars_and_examples():
    result = run_app("--help")
    assert result.returncode == 0
    for text in ["--index", "--model", "--adapter", "--host", "--port", "--share", "--tiny", "MME5_MODEL",
                 "Examples:", "python app.py --tiny"]:
        assert text in result.stdout, text


def test_offline_without_a_model_exits_fast_with_advice(tmp_path):
    started = time.monotonic()
    result = run_app("--index", str(tmp_path / "index"), env={"XDG_CACHE_HOME": str(tmp_path)})
    assert time.monotonic() - started < 60
    assert result.returncode == 2 and result.stdout == ""
    assert "--model" in result.stderr and "python app.py --tiny" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())


def test_a_broken_index_is_reported_not_served(tmp_path, tiny_mllama_dir):
    index = tmp_path / "index"
    index.mkdir()
    (index / "catalog.sqlite").write_bytes(b"this is not a database")
    result = run_app("--index", str(index), "--model", str(tiny_mllama_dir))
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_smoke_mode_builds_the_tiny_model_and_serves_the_sample_photos(tmp_path):
    import httpx
    from gradio_client import Client

    port = free_port()
    log = tmp_path / "app.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "cache"), "MME5_MODEL": "tiny",
           "MME5_PORT": str(port), "TMPDIR": str(tmp_path)}
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for_server(process, f"http://127.0.0.1:{port}/", log)
        answer = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(text="a rocket launch", k=20,
                                                                           api_name="/search_text")
        assert answer["total_indexed"] == 10
        assert {result["relpath"] for result in answer["results"]} >= {"space/rocket.jpg", "everyday/chelsea.jpg"}
        assert (tmp_path / "cache" / "mme5-search" / "tiny-mllama" / "config.json").is_file()
        assert httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "smoke mode" in log.read_text()
