"""Salvaging a damaged catalog (`verify --repair`): copy every readable row into a fresh file.

Like the sqlite3 shell's `.recover`, but table by table through rowid ranges: a range that
touches a damaged page fails and is split until the readable rows around it are copied.
Indexes are rebuilt from the copied rows, so damage confined to an index loses nothing. Tables the
catalog does not declare (the app's albums) are copied the same way, with their own schema and indexes.
The damaged file is kept beside the new one; nothing is deleted.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from mme5.atomic import fsync_dir
from .catalog import Base, Catalog, utcnow
from .errors import IndexCorruptError, storage_problem

TABLES = ("meta", "roots", "vectors", "images")  # parents before children
LOSS_CONSEQUENCE = {
    "images": "the next build finds those photos again and reuses their stored vectors (no re-embedding)",
    "vectors": "the next build embeds those photos again",
    "roots": "their photos are forgotten; run build --dir FOLDER again for any folder missing from `info`",
    "meta": "settings and model metadata kept there are gone",
}
# The text side (indexer/fulltext.py): OCR results are copied (OCR is slow); a photo's words and the full-text
# index are not (the next build reads the words again, in seconds, and refills the index from them).
TEXT_TABLES = ("ocr_text",)
NOT_COPIED = ("words", "text_fts")
LOSS_CONSEQUENCE["ocr_text"] = "the next build runs OCR on those photos again"
OTHER_LOSS = "what the app kept there (albums: saved searches and their pins) is gone; save those albums again"


@dataclass
class SalvageReport:
    kept_as: Path
    copied: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int | None] = field(default_factory=dict)  # rows that were on damaged pages (None: unknown count)

    def lines(self) -> list[str]:
        copied = ", ".join(f"{count} {table}" for table, count in self.copied.items() if table in TABLES)
        text = (
            f"salvaged the damaged catalog into a fresh one ({copied} rows copied; the damaged file is kept as "
            f"{self.kept_as.name})"
        )
        lines = [text]
        kept = ", ".join(
            f"{count} {table}" for table, count in self.copied.items() if table not in TABLES + TEXT_TABLES
        )
        if kept:
            lines.append(f"kept the tables the app adds to the catalog ({kept} rows copied)")
        for table, count in self.lost.items():
            if count != 0:
                what = f"{'some' if count is None else count} row(s) of {table} were on damaged pages and are lost: "
                lines.append(what + LOSS_CONSEQUENCE.get(table, OTHER_LOSS))
        return lines


def salvage(path: Path, max_known_id: int = 0) -> SalvageReport:
    """Replace the catalog file at ``path`` by a fresh one holding every readable row.

    The caller holds the write lock and has closed its own connections. ``max_known_id``:
    ids up to it are never handed out again. IndexCorruptError when nothing is readable.
    """
    path = Path(path)
    probe = sqlite3.connect(path)
    try:
        readable = _try(probe, "SELECT count(*) FROM sqlite_master")
    finally:
        probe.close()
    if not readable:
        raise IndexCorruptError(
            f"{path}: nothing in the catalog is readable, not even its list of tables, so there "
            "is nothing to salvage; restore it from a backup, or move the index folder aside and "
            "build it again"
        )
    fresh_path = path.with_name(f".{path.name}.salvage.tmp")  # a stale one is removed like other temp files
    for leftover in (fresh_path, Path(f"{fresh_path}-wal"), Path(f"{fresh_path}-shm")):
        leftover.unlink(missing_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
    report = SalvageReport(kept_as=path.with_name(f"{path.name}.damaged-{stamp}"))
    Catalog(fresh_path, create=True).close()
    source = sqlite3.connect(path)
    target = sqlite3.connect(fresh_path)
    try:
        for table in TABLES:
            columns = [column.name for column in Base.metadata.tables[table].columns]
            copied, unreadable = _copy_table(source, target, table, columns)
            report.copied[table] = copied
            expected = _try(source, f"SELECT count(*) FROM {table}")  # may still work through an index
            if unreadable:
                report.lost[table] = int(expected) - copied if expected is not None and expected > copied else None
        for table in TEXT_TABLES:
            if _try(source, "SELECT count(*) FROM sqlite_master WHERE name = ?", (table,)):
                columns = [column.name for column in Base.metadata.tables[table].columns]
                copied, unreadable = _copy_table(source, target, table, columns)
                report.copied[table] = copied
                if unreadable:
                    report.lost[table] = None
        for table, other_columns in _other_tables(source, target):  # the app's albums: kept through a repair
            if other_columns is None:  # its schema is on a damaged page
                report.lost[table] = None
                continue
            copied, unreadable = _copy_table(source, target, table, other_columns)
            report.copied[table] = copied
            expected = _try(source, f"SELECT count(*) FROM {_quoted(table)}")
            if unreadable:
                report.lost[table] = int(expected) - copied if expected is not None and expected > copied else None
        for table in [
            table for table in report.copied if table not in TABLES + TEXT_TABLES
        ]:  # e.g. pins of a lost album
            orphans = target.execute(f"PRAGMA foreign_key_check({_quoted(table)})").fetchall()
            target.executemany(f"DELETE FROM {_quoted(table)} WHERE rowid = ?", [(row[1],) for row in orphans])
            report.copied[table] -= len(orphans)
            sequence = _try(source, "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
            if sequence:  # ids of deleted albums are not handed out again, as before the damage
                target.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
                target.execute(
                    "INSERT INTO sqlite_sequence(name, seq) VALUES (?, max(?, coalesce((SELECT max(rowid) "
                    f"FROM {_quoted(table)}), 0)))",
                    (table, sequence),
                )
        target.execute("DELETE FROM images WHERE root_id NOT IN (SELECT id FROM roots)")
        sequence = max(
            max_known_id,
            _try(source, "SELECT seq FROM sqlite_sequence WHERE name = 'images'") or 0,
            _try(target, "SELECT max(id) FROM images") or 0,
        )
        target.execute("DELETE FROM sqlite_sequence WHERE name = 'images'")
        target.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('images', ?)", (sequence,))
        unused = _try(
            target,
            "SELECT count(*) FROM vectors WHERE content_hash NOT IN "
            "(SELECT content_hash FROM images WHERE status = 'ok' AND content_hash IS NOT NULL)",
        )
        target.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('salvage_kept_vectors', ?)", (str(unused or 0),)
        )
        generation = _try(target, "SELECT value FROM meta WHERE key = 'generation'")
        if generation is not None:  # open readers see a changed index and reopen it
            target.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(int(generation) + 1),))
        target.commit()
    except BaseException as error:
        target.close()
        source.close()
        fresh_path.unlink(missing_ok=True)
        problem = storage_problem(error, fresh_path) if isinstance(error, sqlite3.Error) else None
        if problem is not None:  # e.g. no room for the copy: one sentence, the damaged catalog untouched
            raise problem from error
        raise
    target.close()
    source.close()
    os.link(path, report.kept_as)
    wal = Path(f"{path}-wal")
    if wal.exists():
        os.link(wal, Path(f"{report.kept_as}-wal"))
        wal.unlink()
    Path(f"{path}-shm").unlink(missing_ok=True)
    os.replace(fresh_path, path)
    fsync_dir(path.parent)
    return report


def _other_tables(source: sqlite3.Connection, target: sqlite3.Connection) -> list[tuple[str, list[str] | None]]:
    """The tables of the damaged file the catalog does not declare, made in ``target`` with their indexes (from the
    file's own schema); (name, columns) of each, columns None for one whose schema cannot be read."""
    try:
        rows = source.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE TABLE%' "
            "AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    except sqlite3.DatabaseError:
        return []
    tables: list[tuple[str, list[str] | None]] = []
    for name, sql in rows:
        if name in Base.metadata.tables or name.startswith(NOT_COPIED):
            continue
        try:
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()]
            indexes = [
                sql
                for (sql,) in source.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql LIKE 'CREATE %INDEX%'",
                    (name,),
                )
            ]
            target.execute(sql)
            for index in indexes:
                target.execute(index)
        except sqlite3.DatabaseError:
            tables.append((name, None))
            continue
        tables.append((name, columns))
    return tables


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy_table(
    source: sqlite3.Connection, target: sqlite3.Connection, table: str, columns: list[str]
) -> tuple[int, int]:
    """Copy the readable rows of ``table``; a rowid range that cannot be read is split until it can.

    Returns (rows copied, single rowids that could not be read)."""
    names = ", ".join(_quoted(column) for column in columns)
    table_name, table = table, _quoted(table)
    top = max(
        _try(source, f"SELECT max(rowid) FROM {table}") or 0,
        _try(source, "SELECT seq FROM sqlite_sequence WHERE name = ?", (table_name,)) or 0,
        (_try(source, "PRAGMA page_count") or 1) * 256,
    )
    copied, failed, ranges = 0, 0, [(1, int(top))]
    while ranges:
        low, high = ranges.pop()
        try:
            rows = source.execute(f"SELECT {names} FROM {table} WHERE rowid BETWEEN ? AND ?", (low, high)).fetchall()
        except sqlite3.DatabaseError:
            if low < high:
                middle = (low + high) // 2
                ranges += [(middle + 1, high), (low, middle)]
            else:
                failed += 1
            continue
        if rows:
            target.executemany(
                f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", rows
            )
            copied += len(rows)
    return copied, failed


def _try(connection: sqlite3.Connection, query: str, parameters: tuple = ()):
    try:
        row = connection.execute(query, parameters).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else row[0]
