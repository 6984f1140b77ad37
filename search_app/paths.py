"""Which files the app may read and serve: only those inside the indexed roots (and the assets)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


class PathNotAllowedError(PermissionError):
    """A path outside every allowed folder (after resolving ``..`` and symlinks)."""


class PathGuard:
    """Answers "may this file be served?" by comparing *resolved* paths.

    Resolving first is what defeats ``..`` segments and symlinks (a link inside a photo
    folder that points at ``/etc`` resolves to ``/etc`` and is refused).
    """

    def __init__(self, roots: Iterable[str | os.PathLike]):
        self.roots = tuple(dict.fromkeys(Path(root).expanduser().resolve() for root in roots))

    def check(self, path: str | os.PathLike) -> Path:
        """The resolved path if it lies inside an allowed folder; otherwise PathNotAllowedError."""
        if path is None or not str(path).strip():
            raise PathNotAllowedError("empty path: nothing to serve")
        if "\x00" in str(path):
            raise PathNotAllowedError(f"{path!r}: path contains a NUL byte")
        resolved = Path(path).expanduser().resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            raise PathNotAllowedError(
                f"{path}: refused, it is outside the indexed folders ({', '.join(map(str, self.roots)) or 'none'})"
            )
        return resolved

    def allows(self, path: str | os.PathLike) -> bool:
        try:
            self.check(path)
        except PathNotAllowedError:
            return False
        return True
