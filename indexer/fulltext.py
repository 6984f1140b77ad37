"""The catalog's full-text side: keeping ``text_fts`` in step with the photos, finding text hits, fusing them
with the vector ranking.

Build side (``update_text``, run by every build after the photos are committed): photos whose words are
missing or stale (a new photo, a move, a changed file or XMP sidecar) get them read again
(indexer/words.py); contents without an OCR result get one (indexer/ocr.py) unless OCR is off. Each
batch commits its ``words``/``ocr_text`` rows and the matching ``text_fts`` rows in one transaction, and
what is missing is found again from the catalog on every run, so a build killed in this pass finishes
it on the next run.

Videos: OCR reads each keyframe's frame (``ocr.prepare_frame``). The file's row (its first keyframe) has words
and a full-text row like a photo; a further keyframe row (``video_id`` set) has no words and gets a full-text row
holding only its OCR text, when OCR found text in it. Its content hash is the video's content and the keyframe's
millisecond (``video.keyframe_hash``), so the OCR result is cached per content and timestamp like a photo's.

Search side: ``text_hits`` finds photos whose text holds every word of the query (or its quoted
phrases), ``fuse`` orders them by reciprocal-rank fusion of their text rank and their vector rank and
puts them ahead of the vector-only hits, so an exact text hit is never pushed off page 1; a query with no
text hit ranks exactly as the vector search alone. Text is matched after ``normalize`` (case folded, Latin
accents dropped: "café" finds "CAFE"), Latin-script words at word starts, unspaced scripts (CJK) anywhere.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select

from .catalog import STATUS_OK, Image, OcrText, Root, Words, decode_relpath, utcnow
from .ocr import OcrEngine, OcrOutcome, prepare, prepare_frame, read_page
from .scripts import has_unspaced, unspaced
from .words import photo_words, sidecar_signature

log = logging.getLogger(__name__)

COLUMNS = ("ocr", "keywords", "description", "filename")  # a hit's source: the first that matches, in this order
RRF_K = 60  # reciprocal-rank fusion constant (Cormack et al. 2009)
MAX_TEXT_HITS = 200  # text hits fused into one ranking (the rest follow as the vector search ranks them)
MATCH_CANDIDATES = 2_000  # rows SQLite's trigram index hands over for the word-start check
SNIPPET_CHARS = 120
WORDS_BATCH = 256
OCR_BATCH_PER_WORKER = 2  # photos prepared (decoded one at a time), then read by the worker threads, then committed


# -- normalising -----------------------------------------------------------------------------------------------
def _fold(char: str) -> str:
    """One character case-folded, its accents dropped when it is a Latin letter (é -> e, but が stays が);
    line breaks and tabs become spaces (a phrase may run across the lines OCR read)."""
    if char.isspace():
        return " "
    if ord(char) < 0x250 or 0x1E00 <= ord(char) < 0x1F00:
        base = unicodedata.normalize("NFKD", char)
        char = "".join(part for part in base if not unicodedata.combining(part)) or char
    return unicodedata.normalize("NFKC", char).casefold()


def normalize(text: str) -> str:
    return "".join(_fold(char) for char in text or "")


def _normalized_with_map(text: str) -> tuple[str, list[int]]:
    """``normalize(text)`` and, for each of its characters, the index of the original character."""
    out, where = [], []
    for index, char in enumerate(text):
        folded = _fold(char)
        out.append(folded)
        where.extend([index] * len(folded))
    return "".join(out), where


# -- the build side ----------------------------------------------------------------------------------------------
@dataclass
class TextSummary:
    """What the text pass did (kept in the build summary as ``text``)."""

    ocr: str = "off"  # the engine and scripts, or why there is none
    words_read: int = 0
    ocr_read: int = 0  # contents OCR looked at
    ocr_frames: int = 0  # ... of them video keyframes
    ocr_detected: int = 0  # ... that the detection pass sent to recognition
    ocr_with_text: int = 0
    errors: list[dict] = field(default_factory=list)  # {"path", "reason"}: photos indexed without their text
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            **self.__dict__,
            "errors": self.errors[:1000],
            "error_count": len(self.errors),
            "seconds": round(self.seconds, 3),
        }


def update_text(
    catalog, engine: OcrEngine | None, workers: int = 2, budget=None, show_progress: bool = False
) -> TextSummary:
    """Bring ``words``, ``ocr_text`` and ``text_fts`` up to date with the catalog's photos (see the module doc)."""
    started = time.perf_counter()
    summary = TextSummary(ocr=engine.describe() if engine else "off")
    _update_words(catalog, summary, workers, show_progress)
    with catalog.engine.begin() as connection:  # new keyframe rows of already-read frames (a copy, a repair)
        _keyframe_text_rows(connection)
    if engine is not None:
        _update_ocr(catalog, engine, summary, workers, budget, show_progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _photos(session, conditions=()):
    """(id, absolute path, relpath bytes, mtime, content hash) of every searchable photo."""
    query = (
        select(Image.id, Root.path, Image.relpath, Image.mtime_ns, Image.content_hash)
        .join(Root, Root.id == Image.root_id)
        .where(Image.status == STATUS_OK, *conditions)
        .order_by(Image.id)
    )
    for image_id, root, relpath, mtime_ns, digest in session.execute(query):
        yield image_id, os.path.join(root, decode_relpath(relpath)), relpath, mtime_ns, digest


def _update_words(catalog, summary: TextSummary, workers: int, show_progress: bool) -> None:
    with catalog.session() as session:
        seen = {row.image_id: (row.relpath, row.mtime_ns, row.sidecar) for row in session.scalars(select(Words))}
        stale = []
        for image_id, path, relpath, mtime_ns, digest in _photos(session, [Image.video_id.is_(None)]):
            signature = sidecar_signature(path)  # a video's words are its file row's (not each keyframe's)
            if seen.get(image_id) != (relpath, mtime_ns, signature):
                stale.append((image_id, path, relpath, mtime_ns, digest, signature))
    if not stale:
        return
    progress = _progress(len(stale), "words", show_progress)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="indexer-words") as pool:
        for start in range(0, len(stale), WORDS_BATCH):
            batch = stale[start : start + WORDS_BATCH]
            found = list(pool.map(lambda item: photo_words(item[1], decode_relpath(item[2])), batch))
            _commit_words(catalog, batch, found)
            summary.words_read += len(batch)
            progress.update(len(batch))
    progress.close()


def _commit_words(catalog, batch, found) -> None:
    with catalog.engine.begin() as connection:
        ocr = dict(
            connection.execute(
                select(OcrText.content_hash, OcrText.text).where(OcrText.content_hash.in_({item[4] for item in batch}))
            ).all()
        )
        for (image_id, _path, relpath, mtime_ns, digest, signature), words in zip(batch, found):
            connection.execute(Words.__table__.delete().where(Words.image_id == image_id))
            connection.execute(
                Words.__table__.insert().values(
                    image_id=image_id,
                    relpath=relpath,
                    mtime_ns=mtime_ns,
                    sidecar=signature,
                    filename=words.filename,
                    keywords=words.keywords,
                    description=words.description,
                )
            )
            connection.exec_driver_sql("DELETE FROM text_fts WHERE rowid = ?", (image_id,))
            connection.exec_driver_sql(
                "INSERT INTO text_fts(rowid, filename, keywords, description, ocr) VALUES (?, ?, ?, ?, ?)",
                (
                    image_id,
                    normalize(words.filename),
                    normalize(words.keywords),
                    normalize(words.description),
                    normalize(ocr.get(digest, "")),
                ),
            )


def _ocr_todo(catalog) -> dict[str, tuple[str, float | None, int]]:
    """Contents without an OCR result: content hash -> (file path, None for a photo or the second of a video
    keyframe, the video's frame pixels). A video's file row is its first keyframe; its further keyframe rows name
    the same file."""
    with catalog.session() as session:
        done = set(session.scalars(select(OcrText.content_hash)))
        todo: dict[str, tuple[str, float | None, int]] = {}
        query = (
            select(
                Root.path,
                Image.relpath,
                Image.content_hash,
                Image.media_type,
                Image.timestamp_s,
                Image.width,
                Image.height,
            )
            .join(Root, Root.id == Image.root_id)
            .where(Image.status == STATUS_OK)
            .order_by(Image.id)
        )
        for root, relpath, digest, media_type, timestamp_s, width, height in session.execute(query):
            if digest and digest not in done and digest not in todo:
                seconds = (timestamp_s or 0.0) if media_type == "video" else None
                todo[digest] = (os.path.join(root, decode_relpath(relpath)), seconds, (width or 0) * (height or 0))
    return todo


def _update_ocr(catalog, engine: OcrEngine, summary: TextSummary, workers: int, budget, show_progress) -> None:
    todo = _ocr_todo(catalog)
    if not todo:
        return
    progress = _progress(len(todo), "text in photos and video frames", show_progress)
    items = list(todo.items())
    stop = threading.Event()
    with (
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="indexer-ocr") as pool,
        tempfile.TemporaryDirectory(prefix="mme5-ocr-") as folder,
    ):
        try:
            step = OCR_BATCH_PER_WORKER * max(1, workers)
            for start in range(0, len(items), step):
                batch = items[start : start + step]
                pages = [
                    prepare(path, os.path.join(folder, f"{i}.png"), budget)
                    if seconds is None
                    else prepare_frame(path, seconds, os.path.join(folder, f"{i}.png"), budget, pixels)
                    for i, (_d, (path, seconds, pixels)) in enumerate(batch)
                ]
                outcomes = list(
                    pool.map(
                        lambda page: page if isinstance(page, OcrOutcome) else read_page(engine, page, stop=stop),
                        pages,
                    )
                )
                _commit_ocr(catalog, engine, batch, outcomes)
                for (_digest, (path, seconds, _pixels)), outcome in zip(batch, outcomes):
                    summary.ocr_read += 1
                    summary.ocr_frames += seconds is not None
                    summary.ocr_detected += outcome.detected
                    summary.ocr_with_text += bool(outcome.text)
                    if outcome.error:
                        where = path if seconds is None else f"{path} at {seconds:.1f} s"
                        summary.errors.append({"path": path, "reason": outcome.error})
                        log.warning("%s: %s", where, outcome.error)
                progress.update(len(batch))
        except BaseException:  # Ctrl-C, SIGTERM, a failed commit: running passes end now (their text is not kept)
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    progress.close()


def _commit_ocr(catalog, engine: OcrEngine, batch, outcomes) -> None:
    images = Image.__table__
    with catalog.engine.begin() as connection:
        for (digest, _where), outcome in zip(batch, outcomes):
            connection.execute(
                OcrText.__table__.insert()
                .prefix_with("OR REPLACE")
                .values(
                    content_hash=digest,
                    text=outcome.text,
                    error=outcome.error,
                    engine=engine.signature,
                    done_at=utcnow(),
                )
            )
            ids = connection.execute(select(images.c.id).where(images.c.content_hash == digest)).scalars().all()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                connection.exec_driver_sql(
                    f"UPDATE text_fts SET ocr = ? WHERE rowid IN ({','.join('?' * len(chunk))})",
                    (normalize(outcome.text), *chunk),
                )
        _keyframe_text_rows(connection, [digest for digest, _where in batch])


# keyframe rows (not a video's file row) whose content has OCR text but that have no full-text row
_KEYFRAMES_WITHOUT_TEXT_ROW = (
    "FROM images i JOIN ocr_text o ON o.content_hash = i.content_hash WHERE i.video_id IS NOT NULL "
    "AND i.status = 'ok' AND o.text != '' AND i.id NOT IN (SELECT rowid FROM text_fts)"
)


def _keyframe_text_rows(connection, digests=None) -> None:
    """Give the keyframe rows whose frame has OCR text (of ``digests``, or all) their full-text row: that text alone
    (the video's words are on its file row's). A keyframe row without text has none, so most frames cost nothing."""
    where, params = "", ()
    if digests is not None:
        digests = list(digests)
        if not digests:
            return
        where, params = f" AND i.content_hash IN ({','.join('?' * len(digests))})", tuple(digests)
    rows = connection.exec_driver_sql(f"SELECT i.id, o.text {_KEYFRAMES_WITHOUT_TEXT_ROW}{where}", params).all()
    for image_id, text in rows:
        connection.exec_driver_sql(
            "INSERT INTO text_fts(rowid, filename, keywords, description, ocr) VALUES (?, '', '', '', ?)",
            (image_id, normalize(text)),
        )


def _progress(total: int, label: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit=" img", disable=not show, file=sys.stderr, dynamic_ncols=True)


def consistency_problems(connection) -> list[str]:
    """What ``verify`` reports about the text side: full-text rows that disagree with the photos and their words."""
    names = {row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master")}
    if "text_fts" not in names or "words" not in names:
        return []
    problems = []
    orphans = connection.exec_driver_sql(
        "SELECT count(*) FROM text_fts WHERE rowid NOT IN (SELECT id FROM images WHERE status = 'ok')"
    ).scalar()
    if orphans:
        problems.append(f"{orphans} full-text row(s) belong to no searchable photo")
    unindexed = connection.exec_driver_sql(
        "SELECT count(*) FROM words WHERE image_id NOT IN (SELECT rowid FROM text_fts)"
    ).scalar()
    if unindexed:
        problems.append(f"{unindexed} photo(s) have words but no full-text row")
    if "ocr_text" in names:
        missing = connection.exec_driver_sql(f"SELECT count(*) {_KEYFRAMES_WITHOUT_TEXT_ROW}").scalar()
        if missing:
            problems.append(f"{missing} video frame(s) have OCR text but no full-text row")
        textless = connection.exec_driver_sql(
            "SELECT count(*) FROM text_fts t JOIN images i ON i.id = t.rowid WHERE i.video_id IS NOT NULL AND ("
            "t.filename != '' OR t.keywords != '' OR t.description != '' OR i.content_hash NOT IN "
            "(SELECT content_hash FROM ocr_text WHERE text != ''))"
        ).scalar()
        if textless:
            problems.append(f"{textless} full-text row(s) of video frames are not their frame's OCR text alone")
    stale = connection.exec_driver_sql(
        "SELECT t.rowid, t.ocr, o.text FROM text_fts t JOIN images i ON i.id = t.rowid "
        "JOIN ocr_text o ON o.content_hash = i.content_hash WHERE o.text != '' OR t.ocr != ''"
    ).all()
    wrong = sum(1 for _id, stored, text in stale if stored != normalize(text))
    if wrong:
        problems.append(f"{wrong} full-text row(s) hold another text than their photo's OCR result")
    return problems


# -- the search side ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextQuery:
    phrases: tuple[str, ...]  # normalised, from "quoted text"
    terms: tuple[str, ...]  # normalised words outside quotes

    @property
    def parts(self) -> tuple[str, ...]:
        return self.phrases + self.terms

    @property
    def empty(self) -> bool:
        return not self.parts


def parse_query(text: str | None) -> TextQuery:
    """Quoted phrases and the other words of a query, normalised; single letters are no words."""
    if not text or not text.strip():
        return TextQuery((), ())
    phrases = tuple(p for p in (" ".join(normalize(m).split()) for m in re.findall(r'"([^"]+)"', text)) if p)
    rest = re.sub(r'"[^"]*"?', " ", text)
    terms = []
    for word in "".join(char if _in_word(char) or char == "_" else " " for char in normalize(rest)).split():
        if len(word) >= 2 or has_unspaced(word):
            terms.append(word)
    return TextQuery(phrases, tuple(dict.fromkeys(terms)))


@dataclass(frozen=True)
class TextHit:
    image_id: int
    source: str  # "ocr" | "filename" | "keywords" | "description"
    snippet: str
    marks: tuple[tuple[int, int], ...]  # [start, end) of the matched words in ``snippet``

    def to_json(self) -> dict:
        return {"source": self.source, "snippet": self.snippet, "marks": [list(mark) for mark in self.marks]}


def has_fulltext(connection) -> bool:
    return (
        connection.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('text_fts', 'words', 'ocr_text')"
        ).scalar()
        == 3
    )


def text_hits(catalog, query: TextQuery | str, limit: int = MAX_TEXT_HITS) -> list[TextHit]:
    """Searchable photos whose text holds every part of ``query``, best first (SQLite's bm25 order)."""
    if isinstance(query, str):
        query = parse_query(query)
    if query.empty:
        return []
    long_parts = [part for part in query.parts if len(part) >= 3]
    with catalog.engine.connect() as connection:
        if not has_fulltext(connection):
            return []
        where, params = [], []
        if long_parts:
            where.append("text_fts MATCH ?")
            params.append(" AND ".join('"' + part.replace('"', '""') + '"' for part in long_parts))
        for part in query.parts:
            if len(part) < 3:
                where.append("instr(t.filename || ' ' || t.keywords || ' ' || t.description || ' ' || t.ocr, ?) > 0")
                params.append(part)
        order = "ORDER BY bm25(text_fts), t.rowid" if long_parts else "ORDER BY t.rowid"
        rows = connection.exec_driver_sql(
            "SELECT t.rowid, coalesce(w.filename, ''), coalesce(w.keywords, ''), coalesce(w.description, ''), "
            "coalesce(o.text, '') FROM text_fts t JOIN images i ON i.id = t.rowid AND i.status = 'ok' "
            "LEFT JOIN words w ON w.image_id = t.rowid "  # a video's further keyframe rows: OCR text only
            f"LEFT JOIN ocr_text o ON o.content_hash = i.content_hash WHERE {' AND '.join(where)} {order} LIMIT ?",
            (*params, MATCH_CANDIDATES),
        ).all()
    hits = []
    for image_id, filename, keywords, description, ocr in rows:
        columns = {"ocr": ocr, "keywords": keywords, "description": description, "filename": filename}
        hit = _hit(int(image_id), columns, query)
        if hit is not None:
            hits.append(hit)
            if len(hits) >= limit:
                break
    return hits


def _hit(image_id: int, columns: dict[str, str], query: TextQuery) -> TextHit | None:
    """The photo's hit if its text holds every part at word starts; its source is the column with the most parts."""
    found: dict[str, list[tuple[int, int]]] = {}
    for name in COLUMNS:
        normalized, where = _normalized_with_map(columns[name] or "")
        spans = []
        for part in query.parts:
            span = _find(normalized, part)
            if span is not None:
                spans.append((where[span[0]], where[span[1] - 1] + 1))
        if spans:
            found[name] = spans
    matched = {
        part for part in query.parts if any(_find(normalize(columns[name] or ""), part) is not None for name in found)
    }
    if len(matched) < len(query.parts):
        return None
    source = max(found, key=lambda name: (len(found[name]), -COLUMNS.index(name)))
    snippet, marks = _snippet(columns[source], found[source])
    return TextHit(image_id, source, snippet, marks)


def _in_word(char: str) -> bool:
    """A letter, a digit or a combining mark: Devanagari vowel signs and viramas, Arabic harakat and Thai vowels
    are inside a word, not between words (बैंक is one word, not ब and क)."""
    return char.isalnum() or unicodedata.category(char).startswith("M")


def _find(normalized: str, part: str) -> tuple[int, int] | None:
    """Where ``part`` occurs at a word start (anywhere, for a part in an unspaced script)."""
    start = normalized.find(part)
    while start >= 0:
        if unspaced(part[0]) or start == 0 or not _in_word(normalized[start - 1]):
            return start, start + len(part)
        start = normalized.find(part, start + 1)
    return None


def _snippet(text: str, spans: list[tuple[int, int]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Up to SNIPPET_CHARS of ``text`` around its first match, one line, with the matches' positions in it."""
    first = min(start for start, _ in spans)
    begin = max(0, first - SNIPPET_CHARS // 3)
    end = min(len(text), begin + SNIPPET_CHARS)
    piece = text[begin:end].replace("\n", " ")
    prefix = "…" if begin else ""
    marks = sorted(
        (start - begin + len(prefix), stop - begin + len(prefix))
        for start, stop in spans
        if start >= begin and stop <= end
    )
    return prefix + piece + ("…" if end < len(text) else ""), tuple(marks)


def fuse(hits: list[TextHit], vector_scores: dict[int, float]) -> list[TextHit]:
    """Text hits in fused order: reciprocal-rank fusion of their text rank and their rank by vector score
    (``vector_scores``: image id -> the query's cosine score). Both rankings count alike; ties keep text order."""
    by_vector = sorted(range(len(hits)), key=lambda i: (-vector_scores.get(hits[i].image_id, float("-inf")), i))
    vector_rank = {index: rank for rank, index in enumerate(by_vector)}
    fused = sorted(range(len(hits)), key=lambda i: (-(1 / (RRF_K + i + 1) + 1 / (RRF_K + vector_rank[i] + 1)), i))
    return [hits[i] for i in fused]


def fused_with_text(store, query_vector, text: str, hits: list, k: int) -> tuple[list, dict[int, TextHit]]:
    """``hits`` ((score, record) by vector, best first) with the photos whose text matches ``text`` fused in
    ahead of them (``fuse``); returns the first ``k`` and the text hit of each photo found through text.
    Without a text hit, ``hits`` come back unchanged."""
    import numpy as np

    found = text_hits(store.catalog, text)
    if not found:
        return hits, {}
    ids = np.asarray([hit.image_id for hit in found], dtype=np.int64)
    vectors = store.vectors(ids)
    scores = dict(
        zip(ids.tolist(), (np.asarray(vectors, np.float32) @ np.asarray(query_vector, np.float32).reshape(-1)).tolist())
    )
    ordered = fuse(found, scores)
    records = {record.id: record for record in store.records(np.asarray([h.image_id for h in ordered])) if record}
    first = [(float(scores[hit.image_id]), records[hit.image_id]) for hit in ordered if hit.image_id in records]
    taken = {record.id for _, record in first}
    fused = (first + [(score, record) for score, record in hits if record.id not in taken])[:k]
    return fused, {hit.image_id: hit for hit in ordered}


def photo_text(catalog, content_hash: str | None) -> str:
    """The text OCR read in the photo with this content, as read ("" when it found none, has not run, or the catalog
    has no text tables): the viewer shows it, selectable, and the HTTP API returns it."""
    from sqlalchemy import inspect

    if not content_hash or "ocr_text" not in inspect(catalog.engine).get_table_names():
        return ""
    with catalog.session() as session:
        text = session.scalar(select(OcrText.text).where(OcrText.content_hash == content_hash))
    return text or ""


def has_text_condition(catalog):
    """SQL condition on ``Image``: OCR found text in the photo (false for a catalog without the text tables)."""
    from sqlalchemy import false, inspect

    if "ocr_text" not in inspect(catalog.engine).get_table_names():
        return false()
    return Image.content_hash.in_(select(OcrText.content_hash).where(OcrText.text != ""))


def repair_text(connection) -> list[str]:
    """``verify --repair``: a full-text index that disagrees with the photos is emptied with the words it was made
    from; the next build reads the words again (seconds) and refills it, OCR results reused by content."""
    if not consistency_problems(connection):
        return []
    connection.exec_driver_sql("DELETE FROM text_fts")
    connection.exec_driver_sql("DELETE FROM words")
    _keyframe_text_rows(connection)  # video frames' rows need no reading: made again from the kept OCR text now
    return [
        "emptied the full-text index (it disagreed with the photos); the next build refills it from the photos' "
        "names and metadata and the kept OCR results"
    ]


def photo_texts(catalog, image_ids: list[int]) -> dict[int, dict[str, str]]:
    """What each photo's text says, for ``trainer adapt``'s text pairs: ``{image id: {"ocr", "keywords",
    "description"}}`` (keywords and description lines as indexer/words.py joined them; photos without any left out;
    {} for a catalog without the text tables)."""
    from sqlalchemy import inspect

    tables = set(inspect(catalog.engine).get_table_names())
    if not {"words", "ocr_text"} <= tables:
        return {}
    found: dict[int, dict[str, str]] = {}
    with catalog.session() as session:
        for start in range(0, len(image_ids), 1000):
            chunk = [int(image_id) for image_id in image_ids[start : start + 1000]]  # numpy ids bind as blobs
            query = (
                select(Image.id, OcrText.text, Words.keywords, Words.description)
                .outerjoin(OcrText, OcrText.content_hash == Image.content_hash)
                .outerjoin(Words, Words.image_id == Image.id)
                .where(Image.id.in_(chunk))
            )
            for image_id, ocr, keywords, description in session.execute(query):
                text = {"ocr": ocr or "", "keywords": keywords or "", "description": description or ""}
                if any(text.values()):
                    found[image_id] = text
    return found
