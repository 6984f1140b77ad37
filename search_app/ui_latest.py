"""Which replies may reach a browser tab: only those made from what the tab shows now.

Searches, re-ranks and Clear take turns in one queue (or run side by side with ``--concurrency``), so a reply can
be made from a page that is already gone. Two kinds of handler, two rules:

- an *action* starts something new (a search, Clear, an album, "more like this"): its reply is dropped if a newer
  action of the tab started while it ran;
- a *step* works on the results on screen (a filter box losing focus re-ranks them, "Load more" pages them): its
  reply is dropped unless the session it read is still the one the tab shows, and no action started or is running
  meanwhile. A filter box blurred by the click on Clear queues such a step; if it reads the session just before
  Clear's reply is stored, it would otherwise paint the old query's results over the cleared page.

Sessions are told apart by ``Session.serial`` (a copy of the tab's gr.State keeps it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import gradio as gr

from .ui_reply import written
from .ui_session import Session

_UNKNOWN = -1  # a tab this server has not seen write a session (it restarted, or forgot the tab)


@dataclass
class _Tab:
    counter: int = 0  # the tab's actions so far
    running: set[int] = field(default_factory=set)  # actions started and not finished
    shown: int = _UNKNOWN  # the serial of the session the tab was last sent (0: none)


def _serial(session) -> int:
    return session.serial if isinstance(session, Session) else 0


def _unchanged(answer: tuple) -> tuple:
    return tuple(gr.update() for _ in answer)


class LatestOnly:
    """Per browser tab: the action counter, the actions running, and the session on screen (see the module)."""

    def __init__(self, tabs: int = 10_000):
        self._tabs: OrderedDict[str | None, _Tab] = OrderedDict()
        self._limit = tabs
        self._lock = threading.Lock()

    def _tab(self, tab: str | None) -> _Tab:
        record = self._tabs.pop(tab, None) or _Tab()
        self._tabs[tab] = record
        while len(self._tabs) > self._limit:  # forget the oldest tabs: at worst one of their replies is dropped
            self._tabs.popitem(last=False)
        return record

    def _sent(self, record: _Tab, answer: tuple) -> tuple:
        changed, session = written(answer, "session")
        if changed:
            record.shown = _serial(session)
        return answer

    def start(self, tab: str | None) -> int:
        """A new action of ``tab``: its number (for ``finish``)."""
        with self._lock:
            record = self._tab(tab)
            record.counter += 1
            record.running.add(record.counter)
            return record.counter

    def finish(self, tab: str | None, action: int, answer: tuple | None) -> tuple | None:
        """``action`` ended (``answer`` None: it failed): its reply, or no changes if a newer action started."""
        with self._lock:
            record = self._tab(tab)
            record.running.discard(action)
            if answer is None:
                return None
            if record.counter != action:
                return _unchanged(answer)
            return self._sent(record, answer)

    def current(self, tab: str | None) -> int:
        """The number of ``tab``'s newest action (0: none yet)."""
        with self._lock:
            return self._tab(tab).counter

    def follow(self, tab: str | None, begun: int, read: Session | None, answer: tuple) -> tuple:
        """A step's reply, made from the session ``read`` and begun when ``current(tab)`` was ``begun``: itself, or
        no changes if an action started or is running since, or the tab shows another session now."""
        with self._lock:
            record = self._tab(tab)
            moved = record.shown not in (_UNKNOWN, _serial(read))
            if record.counter != begun or record.running or moved:
                return _unchanged(answer)
            return self._sent(record, answer)
