"""The trainer's one error base class: a problem the user can fix (bad data, a run folder in the way)."""

from __future__ import annotations


class TrainerError(Exception):
    """Base class for every error the trainer reports as a one-line message."""


class AdaptError(TrainerError, ValueError):
    """``trainer adapt`` cannot continue; the message says what to change (one line, not a traceback)."""
