"""Every MME5_* variable is read, checked and documented in mme5/settings.py (these tests are about the
variables themselves, so they set them; each test says which)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mme5.settings import BY_NAME, VARIABLES, Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("mme5", "indexer", "search_app", "synth", "trainer")
NAME = re.compile(r"\bMME5_[A-Z][A-Z_]*[A-Z]\b")


def _modules():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def test_every_variable_the_code_mentions_is_a_setting():
    """A string naming an MME5_* variable (help texts, messages) names one that settings.py reads."""
    named, constants = set(), set()  # constants: Python names such as MME5_MODEL_ID, not variables
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named |= set(NAME.findall(node.value))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                constants.add(node.id)
    named -= constants
    assert named and named <= set(BY_NAME), sorted(named - set(BY_NAME))
    assert len(VARIABLES) == len(BY_NAME) == 27  # one entry each, no name twice


def test_only_settings_reads_mme5_variables_from_the_environment():
    readers = []
    for path in _modules():
        if path == REPO / "mme5" / "settings.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("environ.get", "getenv")) and node.args:
                key = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
                key = node.slice
            if key is None:
                continue
            value = key.value if isinstance(key, ast.Constant) else constants.get(getattr(key, "id", None))
            if isinstance(value, str) and value.startswith("MME5_"):
                readers.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not readers, "read MME5_* variables through mme5.settings.Settings:\n" + "\n".join(readers)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MME5_PORT", "80x", "expected a port number"),
        ("MME5_SHARE", "maybe", "expected 1 or 0"),
        ("MME5_POLL", "-1", "expected a number of seconds"),
        ("MME5_CONCURRENCY", "0", "expected a whole number of at least 1"),
        ("MME5_PAGE_SIZE", "lots", "expected a whole number"),
        ("MME5_QUERY_BUCKETS", "short", "give token lengths"),
        ("MME5_FAST_ATTENTION", "sometimes", "expected 1 or 0"),
        ("MME5_GPU_SEARCH", "auto", "expected 1 or 0"),
    ],
)
def test_a_bad_value_is_a_sentence_naming_the_variable(name, value, expected):
    with pytest.raises(SettingsError, match=f"^{name}={value!r}: {expected}") as caught:
        Settings.from_env({name: value})
    assert isinstance(caught.value, ValueError)


def test_values_are_typed_and_read_when_asked(monkeypatch, tmp_path):
    # about the variables: sets them
    monkeypatch.setenv("MME5_PORT", " 8080 ")
    monkeypatch.setenv("MME5_SHARE", "true")
    monkeypatch.setenv("MME5_QUERY_BUCKETS", "64, 32")
    monkeypatch.setenv("MME5_CACHE_DIR", "~/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MME5_WATCH", "")  # empty is unset
    settings = Settings.from_env()
    assert (settings.port, settings.share, settings.query_buckets, settings.watch) == (8080, True, (32, 64), None)
    assert settings.cache_dir == tmp_path / "cache"
    monkeypatch.setenv("MME5_PORT", "9090")
    assert Settings.from_env().port == 9090


def test_library_readers_use_the_checked_values(monkeypatch):
    # about MME5_FAST_ATTENTION and MME5_GPU_SEARCH: sets them
    from indexer import vectors
    from mme5 import fast_attention

    monkeypatch.setenv("MME5_FAST_ATTENTION", "sometimes")  # used to be ignored silently
    with pytest.raises(SettingsError, match="MME5_FAST_ATTENTION='sometimes'"):
        fast_attention.wanted("cuda")
    monkeypatch.setenv("MME5_FAST_ATTENTION", "off")
    assert not fast_attention.wanted("cuda")
    monkeypatch.setenv("MME5_GPU_SEARCH", "no")
    assert vectors._torch_gpu_for("flat", 10**9, 64) is None


def test_the_app_says_which_variable_is_wrong(monkeypatch, capsys):
    # about MME5_PORT: sets it
    from search_app.__main__ import main

    monkeypatch.setenv("MME5_PORT", "eighty")
    assert main(["--help"]) == 1  # checked before anything else, --help included
    err = capsys.readouterr().err
    assert "app: error: MME5_PORT='eighty': expected a port number from 0 to 65535" in err and "bug" not in err


def test_the_app_takes_true_for_a_flag(monkeypatch):
    # about MME5_SHARE / MME5_WATCH: sets them
    from search_app.__main__ import build_parser

    monkeypatch.setenv("MME5_SHARE", "true")
    monkeypatch.setenv("MME5_WATCH", "1")
    args = build_parser().parse_args([])
    assert args.share and args.watch


def test_settings_command_lists_every_variable_and_hides_secrets(monkeypatch, capsys):
    # about MME5_AUTH: sets it
    from mme5.__main__ import main

    monkeypatch.setenv("MME5_AUTH", "alice:hunter2")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert all(variable.name in out for variable in VARIABLES)
    assert "hunter2" not in out and "(set, hidden)" in out


def test_the_cache_folders_follow_one_rule(monkeypatch, tmp_path):
    # about MME5_CACHE_DIR and XDG_CACHE_HOME: sets them
    from mme5 import onnx_runtime
    from mme5.settings import user_cache_dir
    from search_app.private import cache_home

    monkeypatch.delenv("MME5_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "mme5"
    assert onnx_runtime.cache_root() == tmp_path / "xdg" / "mme5" / "onnx"
    assert cache_home() == tmp_path / "xdg" / "mme5-search"
    monkeypatch.setenv("MME5_CACHE_DIR", str(tmp_path / "own"))
    assert onnx_runtime.cache_root() == tmp_path / "own" / "onnx" and cache_home() == tmp_path / "xdg" / "mme5-search"
