"""Every command line sorts failures the same way: a user's problem is one line and exit 1, a bug is a traceback
saying "this is a bug" and exit 1, bad usage exits 2. Bugs are simulated by making one handler raise KeyError."""

from __future__ import annotations

import os
import signal

import pytest


def assert_bug(code: int, err: str, prog: str) -> None:
    assert code == 1
    assert "Traceback (most recent call last)" in err and "KeyError: 'simulated defect'" in err
    assert f"{prog}: this is a bug (an unexpected KeyError)" in err


def assert_user_error(code: int, err: str, prog: str, text: str) -> None:
    assert code == 1 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"{prog}: error: ") and text in lines[-1], err
    assert sum(line.startswith(f"{prog}: error") for line in lines) == 1


def defect(*args, **kwargs):
    raise KeyError("simulated defect")


def usage_code(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        return stop.code


def test_mme5(monkeypatch, capsys, tmp_path, tiny_mllama_dir):
    import mme5.tiny
    from mme5.__main__ import main

    assert usage_code(main, ["embed", "--model", str(tiny_mllama_dir)]) == 2  # neither --text nor --image
    assert "give --image, --text, or both" in capsys.readouterr().err
    assert usage_code(main, ["tiny"]) == 2  # --out missing
    capsys.readouterr()
    code = main(["embed", "--model", str(tiny_mllama_dir), "--device", "cpu", "--image", str(tmp_path / "none.jpg")])
    assert_user_error(code, capsys.readouterr().err, "mme5", "none.jpg: file not found")
    monkeypatch.setattr(mme5.tiny, "build_tiny", defect)
    assert_bug(main(["tiny", "--out", str(tmp_path / "tiny")]), capsys.readouterr().err, "mme5")


def test_indexer(monkeypatch, capsys, tmp_path):
    import indexer.__main__ as cli

    assert usage_code(cli.main, ["search", "--index", str(tmp_path)]) == 2
    assert usage_code(cli.main, ["frobnicate"]) == 2
    capsys.readouterr()
    assert_user_error(
        cli.main(["info", "--index", str(tmp_path / "nothing")]), capsys.readouterr().err, "indexer", "nothing"
    )
    monkeypatch.setattr(cli, "run_info", defect)
    assert_bug(cli.main(["info", "--index", str(tmp_path)]), capsys.readouterr().err, "indexer")


def test_synth(monkeypatch, capsys, tmp_path):
    import synth.cli as cli

    assert usage_code(cli.main, ["generate"]) == 2
    assert usage_code(cli.main, []) == 2
    capsys.readouterr()
    assert_user_error(
        cli.main(["stats", str(tmp_path / "missing")]), capsys.readouterr().err, "synth", "not a synth output folder"
    )
    monkeypatch.setattr(cli, "cmd_stats", defect)
    assert_bug(cli.main(["stats", str(tmp_path)]), capsys.readouterr().err, "synth")


def test_trainer(monkeypatch, capsys, tmp_path):
    import trainer.__main__ as cli

    assert usage_code(cli.main, ["train"]) == 2
    assert usage_code(cli.main, ["merge", "--model", "m"]) == 2
    capsys.readouterr()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("x")
    code = cli.main(["merge", "--model", "m", "--adapter", "a", "--out", str(taken)])
    assert_user_error(code, capsys.readouterr().err, "trainer", "already exists and is not empty")
    monkeypatch.setattr(cli, "run_merge", defect)
    assert_bug(
        cli.main(["merge", "--model", "m", "--adapter", "a", "--out", str(tmp_path / "new")]),
        capsys.readouterr().err,
        "trainer",
    )


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    for name in ("MME5_AUTH", "MME5_AUTH_FILE", "MME5_ALLOW_ANONYMOUS", "SPACE_ID", "MME5_SHARE", "MME5_HOST"):
        monkeypatch.delenv(name, raising=False)
    # In-process `main()`: nothing may land in, or be read from (a users file), the developer's own ~/.cache and
    # ~/.config. The default places are tested by the app subprocesses in a fresh HOME (tests/userworld).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


def test_search_app(monkeypatch, capsys, tmp_path, app_env):
    import search_app.__main__ as cli

    assert usage_code(cli.main, ["--port", "not-a-number"]) == 2
    assert usage_code(cli.main, ["--host", "0.0.0.0", "--index", str(tmp_path / "i")]) == 2  # no login: refused
    assert "refusing to serve your photos without a login" in capsys.readouterr().err
    code = cli.main(["--index", str(tmp_path / "new"), "--photos", str(tmp_path / "no-photos")])
    assert_user_error(code, capsys.readouterr().err, "app", "no-photos: photo folder not found")
    monkeypatch.setattr(cli, "open_or_build", defect)
    assert_bug(cli.main(["--index", str(tmp_path / "new")]), capsys.readouterr().err, "app")
    assert usage_code(cli.main, ["add-user"]) == 2  # NAME missing


def test_ctrl_c_while_c_extensions_load_is_held_then_raised():
    """A KeyboardInterrupt raised inside a C extension's initialisation becomes an ImportError or is lost (seen with
    numpy importing ``datetime`` from C); held, it is raised when the imports are done, and the handler restored."""
    from mme5.cli import held_interrupts

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (pytest may run in `&`)
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with held_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # bytecode runs: an unheld signal would have been raised by now
                    reached.append(1)
        assert len(reached) == 1000
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with held_interrupts():  # nothing pending: nothing raised
            reached.clear()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
