"""How every command line in the repo ends: the same messages and exit codes for the same kinds of failure.

0 ok · 1 error · 2 usage (argparse, or a missing/contradictory option) · 130 interrupted.
A user error (an instance of a package's error base class, or the environment refusing: disk
full, permission denied) is one ``prog: error: ...`` line; anything else is a bug and gets the
full traceback plus a line saying so, so a real defect is never disguised as a user mistake.
"""
from __future__ import annotations

import errno
import sys
import traceback
from typing import Callable, Sequence

from .errors import MME5Error

OK, ERROR, USAGE, INTERRUPTED = 0, 1, 2, 130
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.EMFILE}


class UsageError(MME5Error):
    """The options given cannot work together (exit 2, like argparse's own errors)."""


def is_environment_error(error: BaseException) -> bool:
    """Disk full, read-only file system, permission denied ...: the machine refused, the code did not fail."""
    return isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None, prog: str,
        user_errors: tuple[type[BaseException], ...] = (), interrupted: str = "interrupted",
        escape: Callable[[str], str] = str) -> int:
    """Call ``main(argv)`` and turn what escapes it into a message and an exit code.

    ``escape`` makes a message safe for a terminal (e.g. the indexer's ``printable``, which
    escapes control characters that file names can carry).
    """
    try:
        return main(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return INTERRUPTED
    except UsageError as error:
        print(escape(f"{prog}: error: {error}"), file=sys.stderr)
        return USAGE
    except BaseException as error:  # noqa: BLE001 - sorted below into user errors and bugs
        if isinstance(error, (MME5Error, *user_errors)) or is_environment_error(error):
            print(escape(f"{prog}: error: {error}"), file=sys.stderr)
            return ERROR
        traceback.print_exc()
        print(f"{prog}: this is a bug (an unexpected {type(error).__name__}), not something you did wrong; please "
              "report it with the traceback above.", file=sys.stderr)
        return ERROR
