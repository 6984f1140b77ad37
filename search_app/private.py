"""Per-user private folders: previews of private photos must not be readable by other accounts on the machine."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from pathlib import Path

from mme5.atomic import atomic_open

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
        raise SearchAppError(
            f"{path}: expected a private folder, found a link or a file; remove it or set "
            "XDG_CACHE_HOME to another folder"
        )
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise SearchAppError(
            f"{path}: owned by another account (uid {info.st_uid}); previews of your photos must not "
            "be stored there. Remove it or set XDG_CACHE_HOME to a folder of your own"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def hand_to_gradio(path: str | os.PathLike) -> str:
    """``path`` as a file inside Gradio's own folder, to be a component's value (a preview, a download).

    Only for files the app made from photos it has checked (a preview, the private copy of an original, an album
    zip). Gradio shows a file only from its own folder, the working directory or the system temp directory, and
    refuses the rest (InvalidPathError): our private cache folders lie outside all three on every default install.
    Granting Gradio those folders (``allowed_paths``) would also serve every file in them to anyone who can reach
    the page, by path, including previews left there by other indexes; a hard link (a copy across file systems) of
    this one file serves this file only, as Gradio's own copy of it would. The link is named after the file's
    identity, so a file shown again reuses it; Gradio's folder is private (0700) when ``serve()`` chose it.
    """
    source = Path(path)
    info = source.stat()
    identity = f"{source.resolve()}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}"
    folder = private_dir(gradio_folder() / "mme5" / hashlib.sha256(identity.encode()).hexdigest()[:32])
    target = folder / source.name
    if target.is_file():
        return str(target)
    link = folder / f".{source.name}.{os.getpid()}.{threading.get_ident()}.link"
    try:
        os.link(source, link)
    except OSError:  # another file system, or one without hard links
        with atomic_open(target) as copy, open(source, "rb") as original:
            shutil.copyfileobj(original, copy)
    else:
        os.replace(link, target)
    return str(target)


def gradio_folder() -> Path:
    """Where Gradio keeps uploads and the files it serves (``GRADIO_TEMP_DIR``; ``serve()`` makes it private)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())
