"""The build's records, shared by the build (indexer/build.py), its engines (indexer/engines.py,
indexer/ray_engine.py) and the commands that report on it (watch, info): what a build did
(``BuildSummary``, ``FileError``), the catalog changes decided since the last commit (``Pending``)
and the error text of an image the model rejects. Nothing here imports the build."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MAX_ERRORS_KEPT = 1000  # in the stored last-build summary; the catalog keeps every error row


def model_rejected_reason(error: Exception) -> str:
    """The error text recorded for an image the model could not embed (both engines)."""
    return f"the model could not embed this image ({type(error).__name__}: {error})"


@dataclass
class FileError:
    path: str
    reason: str


@dataclass
class BuildSummary:
    """What a build did.

    ``errors``: the files this build recorded as unreadable, with their reasons; each is an error row in the
    catalog (what ``info`` counts as "with errors"), not tried again until it changes. ``skipped``: what it
    could not look at and recorded nothing about (a folder it could not list or a symbolic link loop, a file
    that vanished or changed while being read); the next build looks again. A re-scan that finds nothing new
    reports neither."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: list[FileError] = field(default_factory=list)
    skipped: list[FileError] = field(default_factory=list)
    seconds: float = 0.0
    embedded: int = 0  # model forward passes (duplicates and moves need none)
    duplicates: int = 0  # new paths whose content was already embedded
    images: int = 0  # searchable images after the build
    index_type: str = ""
    started_at: str = ""
    kept: int = 0  # photos whose files look missing but were kept (unmounted drive?); --prune drops them
    warnings: list[str] = field(default_factory=list)
    peak_decode_pixels: int = 0  # most pixels decoded at once (bounded by the decode budget)
    text: dict = field(default_factory=dict)  # the text pass (words, OCR): indexer.fulltext.TextSummary.to_dict()

    @property
    def processed(self) -> int:
        return self.added + self.updated + self.moved + len(self.errors) + len(self.skipped)

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["errors"] = [asdict(error) for error in self.errors[:MAX_ERRORS_KEPT]]
        data["error_count"] = len(self.errors)
        data["skipped"] = [asdict(error) for error in self.skipped[:MAX_ERRORS_KEPT]]
        data["skipped_count"] = len(self.skipped)
        data["rate"] = round(self.rate, 2)
        data["seconds"] = round(self.seconds, 3)
        return data

    def __str__(self) -> str:
        kept = f"; KEPT {self.kept} photo(s) whose files were not found (see the warnings; --prune drops them)"
        return (
            f"added {self.added}, updated {self.updated}, moved {self.moved}, removed {self.removed}, "
            f"unchanged {self.unchanged}, errors {len(self.errors)}"
            + (f", skipped {len(self.skipped)}" if self.skipped else "")
            + f" in {self.seconds:.1f} s "
            f"({self.rate:.1f} images/s); {self.images} images searchable ({self.index_type} index)"
            + (kept if self.kept else "")
        )


@dataclass
class Pending:
    """Catalog changes the build decided since its last commit, and the new vectors they need."""

    rows: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    delete_ids: list[int] = field(default_factory=list)
    vectors: dict = field(default_factory=dict)  # content hash -> its new vector, in order
    keyframes: dict = field(default_factory=dict)  # index in rows of a new video -> its further keyframes' rows

    def full(self, batch_size: int) -> bool:
        return len(self.vectors) >= batch_size or len(self.rows) + len(self.updates) + len(self.delete_ids) >= 256

    @property
    def empty(self) -> bool:
        return not (self.rows or self.updates or self.delete_ids or self.vectors)
