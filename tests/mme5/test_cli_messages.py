"""The command lines show the library's log messages as the plain lines the library used to print."""

from __future__ import annotations

import logging

from mme5.cli import OK, run


def test_a_command_prints_library_log_lines_as_they_are(capsys):
    def main(argv):
        logging.getLogger("indexer.build").info("indexer: rebuilding the vector index (grew)")
        logging.getLogger("trainer.data").warning("trainer: skipped 2 bad row(s): 2 no query")
        logging.getLogger("mme5.loading").debug("not shown")
        return OK

    assert run(main, [], "prog") == OK
    assert run(main, [], "prog") == OK  # the handler is installed once: no doubled lines
    err = capsys.readouterr().err
    assert err == ("indexer: rebuilding the vector index (grew)\ntrainer: skipped 2 bad row(s): 2 no query\n") * 2


def test_other_libraries_info_lines_stay_quiet(capsys):
    run(lambda argv: logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection") or OK, [], "p")
    assert "Starting new" not in capsys.readouterr().err
