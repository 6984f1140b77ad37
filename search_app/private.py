"""Per-user private folders: previews of private photos must not be readable by other accounts on the machine."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import SearchAppError


def cache_home() -> Path:
    """The app's cache folder (tiny model, smoke-mode index, previews), under the user's cache dir."""
    from mme5.settings import xdg_cache_home

    return xdg_cache_home() / "mme5-search"


def data_home() -> Path:
    """The app's data folder (albums of published indexes: the user's own, kept when caches are cleared)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "mme5-search"


def config_home() -> Path:
    """Where ``add-user`` keeps the users file by default."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "mme5-search"


def private_dir(path: str | os.PathLike) -> Path:
    """``path`` created if needed and made mode 0700; refused if another account owns it.

    Tightening an existing folder we own is safe (only we could read it anyway); a folder owned
    by someone else could be read or swapped by them, so we stop rather than write previews there.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise SearchAppError(f"{path}: expected a private folder, found a link or a file; remove it or set "
                             "XDG_CACHE_HOME to another folder")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise SearchAppError(f"{path}: owned by another account (uid {info.st_uid}); previews of your photos must not "
                             "be stored there. Remove it or set XDG_CACHE_HOME to a folder of your own")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path
