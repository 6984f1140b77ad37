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

    def batch(self) -> "_BatchGuard":
        """A checker for many paths at one moment: each folder is resolved once, each file lstat-ed once."""
        return _BatchGuard(self)


class _BatchGuard:
    """Same answers as PathGuard.allows, cheaper for a page of results sharing a few folders.

    Only valid for a short burst (one ranking): a folder swapped for a symlink later is
    caught by the next batch, and by the full check before any file is read.
    """

    def __init__(self, guard: PathGuard):
        self.guard = guard
        self.folders: dict[str, bool] = {}

    def allows(self, path: str | os.PathLike) -> bool:
        path = os.fspath(path)
        folder, name = os.path.split(path)
        if not name or name in (".", "..") or "\x00" in path:
            return self.guard.allows(path)
        try:
            if os.path.islink(path):
                return self.guard.allows(path)
        except OSError:
            return False
        allowed = self.folders.get(folder)
        if allowed is None:
            allowed = self.folders[folder] = self.guard.allows(folder)
        return allowed
