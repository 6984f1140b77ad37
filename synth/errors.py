"""synth's one error base class: a problem the user can fix (a bad option, an unusable folder, a refusing API)."""

from __future__ import annotations


class SynthError(Exception):
    """Base class for every error synth reports as a one-line message."""


class SpecError(SynthError, ValueError):
    """A bad --languages/--tasks list or another option value."""
