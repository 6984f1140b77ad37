"""A run folder: ``run.json`` (settings), ``samples.jsonl`` and ``failures.jsonl`` (append-only).

Each line is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced, so a
kill leaves at most one partial last line; opening the folder cuts it off, and the
sample it held is simply generated again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterator

from mme5.atomic import TEMP_SUFFIX, write_atomic

from .errors import SynthError

logger = logging.getLogger(__name__)

SAMPLES = "samples.jsonl"
FAILURES = "failures.jsonl"
MANIFEST = "run.json"
INDEX = "index"  # where `generate --images DIR` keeps the index it builds
MAY_CHANGE = {"prices", "base_url", "index_dir"}  # settings a resumed run may update


class RunFolderError(SynthError, ValueError):
    """The output folder cannot be used as asked; the message says why and what to do."""


def _repair_tail(path: Path) -> int:
    """Cut a partial last line (a kill mid-write); returns the bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return 0
        block = 1 << 16
        position = size
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        else:
            keep = 0
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return size - keep


def iter_jsonl(path: Path) -> Iterator[dict]:
    """Every complete line, streamed; a corrupt line in the middle is an error naming the line.

    A last line without its newline is a write a kill cut short: readers skip it, writers cut it.
    """
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n") or not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise RunFolderError(f"{path}:{number}: corrupt line ({error.msg}); fix or delete that line") from None


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.samples_path = self.path / SAMPLES
        self.failures_path = self.path / FAILURES
        self.manifest_path = self.path / MANIFEST
        self.index_path = self.path / INDEX
        self._fds: dict[Path, int] = {}

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            raise RunFolderError(
                f"{self.path}: not a synth output folder (no {MANIFEST}); "
                "create one with `python -m synth generate --out DIR ...`"
            )
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise RunFolderError(f"{self.manifest_path}: corrupt ({error.msg})") from None

    def start(self, settings: dict) -> bool:
        """Create the folder, or check that it was started with the same settings; True if resuming."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path}: exists and is not a folder")
        if self.exists():
            previous = self.manifest()
            changed = sorted(
                key
                for key in set(previous) | set(settings)
                if key not in MAY_CHANGE and previous.get(key) != settings.get(key)
            )
            if changed:
                detail = "; ".join(f"{key}: was {previous.get(key)!r}, now {settings.get(key)!r}" for key in changed)
                raise RunFolderError(
                    f"{self.path} holds a run with other settings ({detail}). Re-run with the same settings to "
                    "continue it, or choose a new --out."
                )
            self._write_manifest(settings)
            for path in (self.samples_path, self.failures_path):
                removed = _repair_tail(path)
                if removed:
                    logger.warning(f"synth: removed a partial last line ({removed} bytes) from {path}")
            return True

        def ours(name: str) -> bool:  # the index, or a manifest cut short by a kill (write_atomic's temp file)
            return name == INDEX or (name.startswith(f".{self.manifest_path.name}.") and name.endswith(TEMP_SUFFIX))

        if self.path.exists() and not all(ours(entry.name) for entry in self.path.iterdir()):
            raise RunFolderError(f"{self.path}: folder is not empty and holds no synth run; choose a new --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_manifest(settings)
        return False

    def _write_manifest(self, settings: dict) -> None:
        write_atomic(self.manifest_path, json.dumps(settings, indent=2, ensure_ascii=False))

    def samples(self) -> Iterator[dict]:
        return iter_jsonl(self.samples_path)

    def failures(self) -> Iterator[dict]:
        return iter_jsonl(self.failures_path)

    def _append(self, path: Path, row: dict) -> None:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        written = os.write(fd, line)
        if written != len(line):  # pragma: no cover - regular files take one write whole
            raise OSError(f"{path}: short write ({written} of {len(line)} bytes); disk full?")
        os.fsync(fd)

    def add_sample(self, row: dict) -> None:
        self._append(self.samples_path, row)

    def add_failure(self, row: dict) -> None:
        self._append(self.failures_path, row)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
