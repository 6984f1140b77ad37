"""The search app's one error base class: a problem the person running the app can fix."""

from __future__ import annotations


class SearchAppError(Exception):
    """Base class: bad configuration, a refused start, an unusable users file; the message says what to do."""
