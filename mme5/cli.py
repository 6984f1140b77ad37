"""How every command line in the repo ends: the same messages and exit codes for the same kinds of failure.

0 ok · 1 error · 2 usage (argparse, or a missing/contradictory option) · 130 interrupted.
A user error (an instance of a package's error base class, or the environment refusing: disk
full, permission denied) is one ``prog: error: ...`` line; anything else is a bug and gets the
full traceback plus a line saying so, so a real defect is never disguised as a user mistake.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, Sequence

from .errors import MME5Error

OK, ERROR, USAGE, INTERRUPTED = 0, 1, 2, 130
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.EMFILE}
#: The repo's packages: library modules log under these names (``logging.getLogger(__name__)``), never print.
PACKAGES = ("mme5", "indexer", "search_app", "synth", "trainer")


class UsageError(MME5Error):
    """The options given cannot work together (exit 2, like argparse's own errors)."""


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold Ctrl-C while libraries with C extensions load, and raise it once they have.

    A KeyboardInterrupt raised inside a C extension's initialisation (numpy's imports ``datetime``
    from C) is turned into a misleading ImportError, or lost and the command runs on; held, it is
    raised here, where the command's runner turns it into "interrupted" and exit 130. Only the main
    thread receives signals; elsewhere this does nothing."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pending: list[int] = []
    signal.signal(signal.SIGINT, lambda number, frame: pending.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


class _StderrHandler(logging.StreamHandler):
    """Writes each message, as it is, to whatever ``sys.stderr`` is when it is logged (tests swap it)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the current sys.stderr is always used
        pass


def show_messages(level: int = logging.INFO) -> None:
    """Print the packages' log messages on stderr, one plain line each (no level or logger prefix): the
    commands and the app call this once, so users see the same lines the library used to print. Idempotent."""
    for name in PACKAGES:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
            logger.addHandler(_StderrHandler())


def is_environment_error(error: BaseException) -> bool:
    """Disk full, read-only file system, permission denied ...: the machine refused, the code did not fail."""
    return isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS


def run(
    main: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None,
    prog: str,
    user_errors: tuple[type[BaseException], ...] = (),
    interrupted: str = "interrupted",
    escape: Callable[[str], str] = str,
) -> int:
    """Call ``main(argv)`` and turn what escapes it into a message and an exit code.

    ``escape`` makes a message safe for a terminal (e.g. the indexer's ``printable``, which
    escapes control characters that file names can carry); it is applied to each line, so a
    message's own line breaks stay line breaks, as every command prints them. The packages' log
    messages go to stderr (``show_messages``).
    """
    show_messages()
    try:
        return main(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return INTERRUPTED
    except UsageError as error:
        print(_error_line(prog, error, escape), file=sys.stderr)
        return USAGE
    except BaseException as error:  # noqa: BLE001 - sorted below into user errors and bugs
        if isinstance(error, (MME5Error, *user_errors)) or is_environment_error(error):
            print(_error_line(prog, error, escape), file=sys.stderr)
            return ERROR
        traceback.print_exc()
        print(
            f"{prog}: this is a bug (an unexpected {type(error).__name__}), not something you did wrong; please "
            "report it with the traceback above.",
            file=sys.stderr,
        )
        return ERROR


def _error_line(prog: str, error: BaseException, escape: Callable[[str], str]) -> str:
    """``prog: error: MESSAGE``, escaped line by line (escaping it whole printed its line breaks as a literal \\n)."""
    return "\n".join(escape(line) for line in f"{prog}: error: {error}".split("\n"))
