"""Is this string a local folder or a Hugging Face Hub id? One answer for every package (open_clip's idea).

``ModelRef.parse(text)`` decides, in this order:
  1. an explicit prefix: ``hf-hub:ORG/NAME`` is a Hub id, ``local-dir:PATH`` a local path;
  2. an existing local path (``~`` expanded) wins, so a folder ``org/name`` in the working folder is that folder;
  3. something shaped like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``, ``C:\\x``) is a local path, found or not;
  4. ``ORG/NAME`` is a Hub id;
  5. anything else (a bare ``name``, an empty string) is a ModelRefError saying what was expected.

The canonical form is what an index records: the absolute real path of an existing local path (it is found
again from any working folder), a missing path as typed (``~`` expanded), a Hub id without its prefix.
No torch, no network: it imports in microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

HUB_PREFIX = "hf-hub:"
LOCAL_PREFIX = "local-dir:"
# The Hub's repo names: letters, digits, "-", "_", "." (validate_repo_id), exactly one "/".
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_WINDOWS_PATH = re.compile(r"[A-Za-z]:[\\/]|\\\\")


class ModelRefError(InputError):
    """The text is neither a local path nor a Hub id; the message says what was given and what is expected."""


@dataclass(frozen=True)
class ModelRef:
    """A model (or adapter, or data set) named by ``kind`` ``"local"`` or ``"hub"``; ``canonical`` as above."""

    kind: str
    canonical: str
    given: str

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def is_hub(self) -> bool:
        return self.kind == "hub"

    @property
    def path(self) -> Path:
        """The local path (ValueError for a Hub id: check ``is_local`` first)."""
        if not self.is_local:
            raise ValueError(f"{self.given!r} is a Hub id, not a local path")
        return Path(self.canonical)

    def __str__(self) -> str:
        return self.canonical

    @classmethod
    def parse(cls, text) -> ModelRef:
        text = str(text)
        if text.startswith(HUB_PREFIX):
            return cls.hub(text)
        if text.startswith(LOCAL_PREFIX):
            if not text[len(LOCAL_PREFIX) :]:
                raise ModelRefError(f"{text!r}: give a folder after {LOCAL_PREFIX}")
            return cls._local(text[len(LOCAL_PREFIX) :], text)
        if not text:
            raise ModelRefError("an empty model name: give a local folder or a Hub id such as ORG/NAME")
        if _exists(text) or _looks_like_path(text):
            return cls._local(text, text)
        if _HUB_ID.fullmatch(text):
            return cls("hub", text, text)
        raise ModelRefError(
            f"{text!r} is not a local folder (none at {Path(text).expanduser().absolute()}) and not a Hugging Face "
            f"Hub id of the form ORG/NAME; write {LOCAL_PREFIX}PATH or {HUB_PREFIX}ORG/NAME to say which"
        )

    @classmethod
    def hub(cls, text) -> ModelRef:
        """``text`` (``hf-hub:`` optional) as a Hub id, whatever the local folders; ModelRefError if not ORG/NAME."""
        text = str(text)
        repo = text.removeprefix(HUB_PREFIX)
        if not _HUB_ID.fullmatch(repo) or ".." in repo or "--" in repo:
            raise ModelRefError(f"{text!r}: expected a Hugging Face Hub id such as ORG/NAME")
        return cls("hub", repo, text)

    @classmethod
    def _local(cls, path: str, given: str) -> ModelRef:
        try:
            expanded = Path(path).expanduser()
            canonical = str(expanded.resolve()) if expanded.exists() else str(expanded)
        except (OSError, RuntimeError):  # ~nosuchuser, a folder this user may not look into, a loop: as typed
            canonical = path
        return cls("local", canonical, given)

    @classmethod
    def canonical_of(cls, text: str | None) -> str | None:
        """What an index records for a model/adapter name: the canonical form, or ``text`` itself when it is
        neither a path nor a Hub id (an in-memory model's name); None stays None."""
        if not text:
            return text
        try:
            return cls.parse(text).canonical
        except ModelRefError:
            return text


def _exists(text: str) -> bool:
    try:
        return Path(text).expanduser().exists()
    except (OSError, RuntimeError):  # e.g. "~nosuchuser/x", or a folder this user may not look into
        return False


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text or bool(_WINDOWS_PATH.match(text))
