"""The embedding core's errors: one base class, so a CLI can tell a user's problem from a bug by type alone."""

from __future__ import annotations

import os


class MME5Error(Exception):
    """Base class: a problem the user can fix (a model that cannot be loaded, an unreadable image)."""


class ModelLoadError(MME5Error, OSError):
    """The model could not be found or loaded; the message says what to do."""


class InputError(MME5Error, ValueError):
    """A bad argument to an encode call or a builder (an empty text, lists of different lengths, an unknown name)."""


class ImageError(MME5Error, ValueError):
    """One input image cannot be used; ``path`` says which (a file path, or a short description) and ``reason`` why.

    Callers that carry on past bad files (the indexer, the trainer) catch this type, never parse the message.
    """

    def __init__(self, path, reason: str):
        self.path = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # survives pickling across worker processes
        return type(self), (self.path, self.reason)
