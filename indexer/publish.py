"""What `python -m indexer push` uploads, prepared in a local folder first (no network here).

The folder is a servable index on its own: ``catalog.sqlite`` (a consistent copy made with
SQLite's backup API, never a copy of a live write-ahead log), ``vectors.faiss``, one JPEG
preview per photo content (``previews/ab/<content hash>.jpg``), the originals only when asked
(``originals/<root id>/<relpath>``), and a dataset card (``README.md``). Nothing in it names the
publisher's folders: the copy's roots become ``originals/<root id>`` (relative to the index
folder, see ``IndexStore.root_path``), failed files and build details are dropped, and the model
is recorded by its Hub id, so a Space can load it. An index built with a peft adapter (LoRA/DoRA,
from `python -m trainer train` or `trainer adapt`) carries it in ``adapter/`` (its config and weights),
recorded relative to the index folder; the index's identity keeps the adapter's content digest, so the
app checks it loads the very adapter the vectors were made with.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import CATALOG_FILE, STATUS_OK
from .errors import IndexerError, ReadOnlyIndexError
from .vectors import INDEX_FILE

from .published import ADAPTER, KEPT_META, ORIGINALS, PREVIEWS, PUBLISH_FORMAT  # noqa: F401  (push's names)

HUB_CACHE_MODEL = re.compile(r"/models--([^/]+?)--([^/]+)/snapshots/[0-9a-f]+/?$")


class PublishError(IndexerError):
    """The index cannot be published as asked (a local model with no Hub id, a non-empty folder ...)."""


@dataclass
class PreparedIndex:
    """The folder to upload and what went into it."""

    folder: Path
    photos: int
    model_id: str
    previews: int = 0
    originals: int = 0
    adapter: dict | None = None  # the adapter's adapter_config.json, when the index uses one (it is in ADAPTER/)
    skipped: list[str] = field(default_factory=list)  # "path: reason" of photos with no preview (or original)


def hub_model_id(recorded: str, given: str | None = None) -> str:
    """The Hub id a Space loads the index's model by: ``given``, the recorded id when it is one, or the id a
    local Hugging Face cache folder stands for; PublishError (what to pass) for any other local folder."""
    from mme5.model_ref import ModelRef, ModelRefError

    if given:
        try:
            return ModelRef.hub(given).canonical
        except ModelRefError:
            raise PublishError(f"--model-id {given!r}: expected a Hub model id such as ORG/NAME") from None
    try:
        if recorded and ModelRef.parse(recorded).is_hub:
            return ModelRef.parse(recorded).canonical
    except ModelRefError:
        pass
    match = HUB_CACHE_MODEL.search(str(recorded or "").replace(os.sep, "/"))
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    raise PublishError(
        f"the index's model is the local folder {recorded}, which a Space cannot load. Upload that model to the Hub "
        "(hf upload ORG/NAME FOLDER) or find its Hub id, and pass --model-id ORG/NAME; the app checks by content "
        "that it is the same model."
    )


def prepare_push(
    index_dir,
    folder,
    originals: bool = False,
    model_id: str | None = None,
    preview_size: int | None = None,
    show_progress: bool = True,
) -> PreparedIndex:
    """Write into ``folder`` (new or empty) exactly what `push` uploads; returns what is in it."""
    from mme5.atomic import write_atomic
    from mme5.images import PREVIEW_SIZE

    from .lock import WriteLock
    from .store import IndexStore

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise PublishError(f"{folder}: not empty; give a new or empty folder to prepare the upload in")
    folder.mkdir(parents=True, exist_ok=True)
    store = IndexStore.open(index_dir)
    try:
        if store.published:
            raise PublishError(
                f"{store.index_dir}: this index was downloaded from the Hub (published by `push`); "
                "publish the index it was made from"
            )
        hub_id = hub_model_id(store.model_id, model_id)
        adapter = _copy_adapter(store, folder / ADAPTER, hub_id) if store.adapter else None
        try:
            with WriteLock(store.index_dir, "push"):  # no build replaces vectors.faiss between the two copies
                _snapshot(store, folder / CATALOG_FILE)
                shutil.copyfile(store.index_dir / INDEX_FILE, folder / INDEX_FILE)
        except ReadOnlyIndexError:  # read-only media: nobody can be writing it
            _snapshot(store, folder / CATALOG_FILE)
            shutil.copyfile(store.index_dir / INDEX_FILE, folder / INDEX_FILE)
        records = [record for record in store.records(store.ids()) if record is not None]
        root_ids = {store.root_path(root.path): root.id for root in store.catalog.roots()}
        prepared = PreparedIndex(folder, len(records), hub_id, adapter=adapter)
        _write_files(
            prepared, records, root_ids, originals, preview_size or PREVIEW_SIZE, show_progress, _app_guard(store.roots)
        )
        published = {
            "format": PUBLISH_FORMAT,
            "previews": PREVIEWS,
            "preview_size": preview_size or PREVIEW_SIZE,
            "originals": originals,
            "photos": len(records),
        }
        _scrub(folder / CATALOG_FILE, hub_id, ADAPTER if adapter else None, published)
        write_atomic(folder / "README.md", dataset_card(store.meta, hub_id, published, prepared))
    finally:
        store.close()
    check = IndexStore.open(folder, immutable=True)  # the copy opens as the app will open it, unchanged
    try:
        if check.count != prepared.photos or check.sync_report.changed:
            raise PublishError(
                f"{folder}: the prepared copy does not match the index ({check.count} searchable "
                f"photos, {prepared.photos} expected); run the push again"
            )
    finally:
        check.close()
    return prepared


def _copy_adapter(store, target: Path, hub_id: str) -> dict:
    """Copy the index's adapter (what peft loads: adapter_config.json and the weights) into ``target``; returns its
    config. The config's base model becomes ``hub_id`` (it named the publisher's folder; the identity ignores it).
    PublishError when the folder is gone or no longer holds the adapter the index was built with."""
    from mme5.atomic import write_atomic
    from mme5.identity import adapter_digest, weight_files

    source = Path(store.adapter).expanduser()
    advice = (
        "restore that folder (the index was built with it), or build a new index with the adapter you have "
        f"(python -m indexer build --dir PHOTOS --index NEW_INDEX --model {store.model_id} --adapter FOLDER) "
        "and push that one"
    )
    try:
        config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
        weights = weight_files(source)
        if not isinstance(config, dict) or not weights:
            raise ValueError(
                "no adapter weights (adapter_model.safetensors)"
                if isinstance(config, dict)
                else "adapter_config.json is not a JSON object"
            )
        target.mkdir()
        for name in weights:
            shutil.copyfile(source / name, target / name)
        config["base_model_name_or_path"] = hub_id
        write_atomic(target / "adapter_config.json", (json.dumps(config, indent=2) + "\n").encode())
        copied = adapter_digest(target)
    except (
        OSError,
        ValueError,
    ) as error:  # missing, unreadable, not a peft adapter (a JSONDecodeError is a ValueError)
        shutil.rmtree(target, ignore_errors=True)
        raise PublishError(f"the index's adapter folder {source} cannot be read ({error}); {advice}") from None
    recorded = (store.meta.get("identity") or {}).get("adapter")
    if recorded and copied != recorded:
        shutil.rmtree(target, ignore_errors=True)
        raise PublishError(
            f"the index's adapter folder {source} no longer holds the adapter the index was built with "
            f"(content {copied}, the index records {recorded}); {advice}"
        )
    return config


def _snapshot(store, target: Path) -> None:
    """A consistent copy of the live catalog (SQLite's online backup: committed state only, WAL folded in)."""
    source = store.catalog.engine.raw_connection()
    try:
        destination = sqlite3.connect(target)
        try:
            source.driver_connection.backup(destination)
        finally:
            destination.close()
    finally:
        source.close()


def _app_guard(roots):
    """The app's own rule for which files it may serve (search_app/paths.py: inside an indexed folder once symbolic
    links are resolved); push publishes nothing that rule refuses, neither the file nor a preview of it."""
    from search_app.paths import PathGuard

    return PathGuard(roots)


def _write_files(
    prepared: PreparedIndex, records, root_ids: dict[str, int], originals: bool, size: int, show_progress: bool, guard
) -> None:
    from tqdm import tqdm

    from mme5.atomic import write_atomic
    from mme5.errors import ImageError
    from mme5.images import preview_jpeg

    folder = prepared.folder
    for record in tqdm(records, desc="previews", unit="photo", disable=not show_progress):
        target = folder / PREVIEWS / record.content_hash[:2] / f"{record.content_hash}.jpg"
        if not guard.allows(record.path):
            prepared.skipped.append(
                f"{record.path}: not published: it leads out of the indexed folders (through a "
                "symbolic link), and the app never serves such a file"
            )
            continue
        try:
            if not target.is_file():  # identical copies share one preview
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, preview_jpeg(_preview_source(record, size), size))
                prepared.previews += 1
            if originals:
                _link_original(folder, record, root_ids, guard)
                prepared.originals += 1
        except (ImageError, OSError, UnicodeError) as error:
            prepared.skipped.append(f"{record.path}: {getattr(error, 'reason', None) or error}")


def _preview_source(record, size: int):
    """What a record's preview shows: the photo, or for a video keyframe the frame at its second."""
    if record.media_type != "video":
        return record.path
    from mme5.errors import ImageError

    from .video import VideoError, frame_at

    try:
        return frame_at(record.path, record.timestamp_s or 0.0, 2 * size)
    except VideoError as error:
        raise ImageError(record.path, error.reason) from None


def _link_original(folder: Path, record, root_ids: dict[str, int], guard) -> None:
    """``originals/<root id>/<relpath>``, a symbolic link to the photo (the upload reads through it); where
    links are refused (Windows without Developer Mode) a hard link (same drive), else a copy."""
    record.relpath.encode("utf-8")  # UnicodeError for a name the Hub cannot store (not UTF-8): skipped, reported
    target = folder / ORIGINALS / str(root_ids[record.root]) / record.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.isfile(record.path):
        raise FileNotFoundError(f"{record.path}: original not found")
    source = guard.check(record.path)  # resolved now, as the upload will read it; PathNotAllowedError: skipped
    try:
        target.symlink_to(source)
    except OSError:
        try:
            os.link(source, target)
        except OSError:  # another drive, or a file system without hard links
            shutil.copy2(source, target)


def _scrub(catalog: Path, model_id: str, adapter: str | None, published: dict) -> None:
    """The copy names no publisher folder: relative roots, no failed files (their messages carry paths), no
    albums, only the meta keys in KEPT_META; a rollback-journal file, so it opens read-only with nothing beside it."""
    connection = sqlite3.connect(catalog)
    try:
        connection.execute("UPDATE roots SET path = ? || '/' || id", (ORIGINALS,))
        connection.execute("DELETE FROM images WHERE status != ?", (STATUS_OK,))
        for (table,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'album%'"
        ).fetchall():
            connection.execute(f'DROP TABLE "{table}"')
        _scrub_text(connection)
        marks = ",".join("?" * len(KEPT_META))
        connection.execute(f"DELETE FROM meta WHERE key NOT IN ({marks})", KEPT_META)
        connection.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [
                ("model_id", json.dumps(model_id)),
                ("adapter", json.dumps(adapter)),
                ("published", json.dumps(published)),
            ],
        )
        connection.commit()
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("VACUUM")  # deleted rows' old bytes (paths, error messages) are not kept in free pages
    finally:
        connection.close()


def _scrub_text(connection) -> None:
    """Only the published photos' words and OCR text: the OCR cache keeps the text of every content ever read (a
    photo deleted from the library included), and an OCR error message can name the photo's path. The full-text
    index is rebuilt from its remaining rows, so no deleted row's trigrams stay in its b-tree."""
    names = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"words", "ocr_text", "text_fts"} <= names:
        return  # a catalog from before text: nothing to scrub
    connection.execute("DELETE FROM words WHERE image_id NOT IN (SELECT id FROM images)")
    connection.execute("DELETE FROM ocr_text WHERE content_hash NOT IN (SELECT content_hash FROM images)")
    connection.execute("UPDATE ocr_text SET error = NULL")
    connection.execute("DELETE FROM text_fts WHERE rowid NOT IN (SELECT id FROM images)")
    connection.execute("INSERT INTO text_fts(text_fts) VALUES ('rebuild')")


def dataset_card(meta: dict, model_id: str, published: dict, prepared: PreparedIndex) -> str:
    """README.md of the dataset repo: YAML front matter for the Hub, then what the index is and how to serve it."""
    originals = "included" if published["originals"] else "not included (previews only)"
    adapter = prepared.adapter
    if adapter:
        kind = "DoRA" if adapter.get("use_dora") else str(adapter.get("peft_type") or "peft").replace("LORA", "LoRA")
        rank = f", rank {adapter['r']}" if adapter.get("r") else ""
        adapter_row = (
            f"| adapter | {kind}{rank} (peft) in `{ADAPTER}/`, merged into the model when the index is opened |\n"
        )
        adapter_text = (
            f" with the adapter in `{ADAPTER}/` (fine-tuned with `python -m trainer`; the app checks by "
            "content that model and adapter are the ones the index was built with)"
        )
    else:
        adapter_row = adapter_text = ""
    return f"""---
pretty_name: mmE5 photo search index
tags:
- mme5-photo-search
- image-retrieval
- faiss
viewer: false
---

# Photo search index

A searchable photo index made with `python -m indexer build` and published with `python -m indexer push`.

| | |
|---|---|
| photos | {prepared.photos} |
| model | `{model_id}` |
| vector space | `{meta.get("fingerprint")}` |
| dimensions | {meta.get("dim")} |
| index type | {meta.get("index_type")} |
| previews | {published["preview_size"]} px JPEGs in `{PREVIEWS}/` |
| originals | {originals} |
{adapter_row}
## Serve it

```bash
python app.py --index hf://datasets/USER/NAME
```

or, in a Hugging Face Space running this app, set the variable `MME5_INDEX=hf://datasets/USER/NAME`.
The index is downloaded once into the Hugging Face cache and opened read-only; the model is taken
from the index (`{model_id}`{adapter_text}) unless `--model` is given.

Files: `{CATALOG_FILE}` (SQLite catalog: photos, capture dates, stored vectors), `{INDEX_FILE}` (FAISS
index), `{PREVIEWS}/` (one preview per photo content, named by its hash){
        ", `" + ORIGINALS + "/` (the photos)" if published["originals"] else ""
    }{", `" + ADAPTER + "/` (the peft adapter: adapter_config.json and its weights)" if adapter else ""}.
"""
