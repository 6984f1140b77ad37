"""What a published index is (the layout `python -m indexer push` writes) and the complete check of one before it
is served: a dataset on the Hub is data from a stranger (store.py runs ``validate_published`` on every open of one).
Kept apart from hub.py (transfers) and publish.py (writing), so opening an index needs neither."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import first_line

HUB_PREFIX = "hf://"
# A folder of a dataset in the Hugging Face cache: datasets--ORG--NAME/snapshots/REVISION
HUB_CACHE_DATASET = re.compile(r"(?:^|/)datasets--([^/]+?)--([^/]+)/snapshots/([^/]+)/?$")

PUBLISH_FORMAT = 1
PREVIEWS, ORIGINALS = "previews", "originals"
ADAPTER = "adapter"  # the published adapter's folder, relative to the index folder (the only one allowed)
# Meta keys a published copy keeps: what opening, checking and describing the index need. Anything else
# (root devices, the last build's report with its file paths) stays on the publisher's machine.
KEPT_META = (
    "schema_version",
    "model_id",
    "adapter",
    "fingerprint",
    "identity",
    "family",
    "dim",
    "prompt_version",
    "quantization",
    "created_at",
    "generation",
    "index_generation",
    "index_type",
    "index_type_request",
    "nlist",
    "recall",
    "index_checksum",
    "last_build_at",
)

# What push copies: the config and the weights, safetensors or (adapters saved the older way) a torch pickle, which
# is only ever read by torch's weights-only unpickler (tensors and containers; anything else is refused).
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", ("adapter_model.safetensors", "adapter_model.bin")
ADAPTER_CONFIG_LIMIT = 1 << 20
PEFT_TYPES = ("LORA",)  # what `python -m trainer` writes (DoRA is LoRA with use_dora)
# peft settings that would make loading fetch or import something: only their defaults are accepted
ADAPTER_CONFIG_FIXED: dict[str, tuple[object, ...]] = {
    "revision": (None,),
    "megatron_core": (None, "megatron.core"),
    "megatron_config": (None,),
    "loftq_config": ({},),
}
MAX_DIM = 1 << 16
MAX_PREVIEW_SIZE = 4096
FAISS_HEADER_ALLOWANCE = 1 << 20  # FAISS headers and IVF quantiser tables beyond the per-vector bytes


def where_published(index_dir) -> str:
    """``hf://datasets/ORG/NAME (revision COMMIT)`` for a folder in the Hugging Face cache, else the folder."""
    match = HUB_CACHE_DATASET.search(os.fspath(index_dir).replace(os.sep, "/"))
    if match:
        return f"{HUB_PREFIX}datasets/{match.group(1)}/{match.group(2)} (revision {match.group(3)[:12]}, {index_dir})"
    return str(index_dir)


def validate_published(index_dir, catalog, meta: dict) -> None:
    """Refuse (PublishedIndexError, naming the dataset and the field) a published index that is not in the shape
    `push` writes, before anything of it is served or any file is named after it.

    Everything the app takes from a published catalog is checked here: the meta keys (only those push keeps, the
    required ones present, each of its type), the roots (only ``originals/<id>`` inside the dataset), every photo's
    id, content hash and relative path, every stored vector's length, the text tables (words, OCR text and the
    full-text index as the indexer defines them, of the published photos, texts no longer than it stores), the
    vector file's size, and the adapter
    (``adapter/`` with a sane peft config, its weights in safetensors, or in a torch pickle that torch's
    weights-only unpickler reads as named tensors: never one that would run code). ``IndexStore.open`` calls it on
    every open of a published index, so a dataset revision that changed since the last start is checked again.
    """
    from .errors import PublishedIndexError

    index_dir = Path(index_dir)
    try:
        _check_meta(meta)
        _check_rows(catalog, meta)
        _check_text(catalog)
        _check_vector_file(index_dir, meta)
        _check_adapter(index_dir, meta)
    except PublishedIndexError as error:
        raise PublishedIndexError(
            f"{where_published(index_dir)}: this published index {error}; it is not in the "
            "shape `python -m indexer push` writes, so it is not served (ask its publisher to "
            "publish it again with `python -m indexer push`)"
        ) from None


def refuse_unsynced(index_dir, report) -> None:
    """A published index's vector file must match its catalog as published: never rebuilt or patched on open."""
    from .errors import PublishedIndexError
    from .vectors import INDEX_FILE

    if report.changed:
        what = report.rebuilt or f"{report.added} photo(s) missing from it, {report.removed} it has beyond the catalog"
        raise PublishedIndexError(
            f"{where_published(index_dir)}: this published index has a {INDEX_FILE} that does "
            f"not match its catalog ({what}); it is not served (ask its publisher to publish it "
            "again with `python -m indexer push`)"
        )


def _check_meta(meta: dict) -> None:
    from mme5.registry import runtime_for

    from .errors import PublishedIndexError as Bad
    from .vectors import CHECKSUM_ALGORITHM

    unknown = sorted(set(meta) - set(KEPT_META) - {"published"})
    if unknown:
        raise Bad(f"has meta keys push never writes ({', '.join(map(repr, unknown[:5]))})")
    missing = [key for key in ("published", "model_id", "fingerprint", "dim", "index_checksum") if key not in meta]
    if missing:
        raise Bad(f"lacks the meta key(s) {', '.join(map(repr, missing))} that push writes")
    published = meta["published"]
    if not isinstance(published, dict):
        raise Bad(f"has a meta 'published' that is not a record ({str(published)[:80]!r})")
    expected = {"format": PUBLISH_FORMAT, "previews": PREVIEWS}
    for key, value in expected.items():
        if published.get(key) != value:
            raise Bad(f"has published[{key!r}] = {str(published.get(key))[:80]!r}, not {value!r}")
    if not isinstance(published.get("originals"), bool):
        raise Bad(f"has published['originals'] = {str(published.get('originals'))[:80]!r}, not true or false")
    for key, top in (("preview_size", MAX_PREVIEW_SIZE), ("photos", None)):
        value = published.get(key)
        if not _whole(value, 0, top):
            raise Bad(f"has published[{key!r}] = {str(value)[:80]!r}, not a whole number in range")
    if set(published) - {"format", "previews", "originals", "preview_size", "photos"}:
        raise Bad(f"has published keys push never writes ({sorted(published)!r:.120})")
    model_id = meta["model_id"]
    if not _hub_id(model_id):
        raise Bad(f"names the model {str(model_id)[:120]!r}, not a Hub model id (ORG/NAME)")
    if not isinstance(meta["fingerprint"], str) or not meta["fingerprint"]:
        raise Bad(f"has a meta 'fingerprint' that is not a text ({str(meta['fingerprint'])[:80]!r})")
    if not _whole(meta["dim"], 1, MAX_DIM):
        raise Bad(f"has meta 'dim' = {str(meta['dim'])[:80]!r}, not a whole number from 1 to {MAX_DIM}")
    if meta.get("adapter") not in (None, ADAPTER):
        raise Bad(f"names the adapter folder {str(meta['adapter'])[:200]!r}, not its own ({ADAPTER}/)")
    checksum = meta["index_checksum"]
    if not isinstance(checksum, str) or not checksum.startswith(f"{CHECKSUM_ALGORITHM}:"):
        raise Bad(f"has meta 'index_checksum' = {str(checksum)[:80]!r}, not a {CHECKSUM_ALGORITHM} checksum")
    try:
        runtime_for(meta.get("quantization"))
    except (KeyError, TypeError):
        raise Bad(f"has meta 'quantization' = {str(meta.get('quantization'))[:80]!r}, not one this app knows") from None
    if meta.get("nlist") is not None and not _whole(meta["nlist"], 1, 1 << 24):
        raise Bad(f"has meta 'nlist' = {str(meta['nlist'])[:80]!r}, not a whole number in range")
    for key in ("identity", "recall"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise Bad(f"has a meta {key!r} that is not a record ({str(meta[key])[:80]!r})")
    for key in (
        "family",
        "prompt_version",
        "created_at",
        "last_build_at",
        "index_type",
        "index_type_request",
        "schema_version",
        "generation",
        "index_generation",
    ):
        value = meta.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (str, int)) or len(str(value)) > 200
        ):
            raise Bad(f"has a meta {key!r} that is not a short text or number ({str(value)[:80]!r})")


def _check_rows(catalog, meta: dict) -> None:
    """Roots, photos and stored vectors, in SQL where it can (a few indexed scans even for 100,000 photos)."""
    import ntpath

    from sqlalchemy import text

    from .catalog import STATUS_OK, decode_relpath
    from .errors import PublishedIndexError as Bad

    with catalog.engine.connect() as connection:

        def rows(sql: str, **values):
            return connection.execute(text(sql), values).all()

        for root_id, path in rows("SELECT id, path FROM roots"):
            if path != f"originals/{root_id}" or root_id < 1:
                raise Bad(f"names the folder {str(path)[:200]!r}, not one of its own (originals/<id>)")
        bad = rows(
            "SELECT id, status FROM images WHERE status != :ok OR id < 1 OR typeof(id) != 'integer' LIMIT 1",
            ok=STATUS_OK,
        )
        if bad:
            raise Bad(f"has a photo row (id {str(bad[0][0])[:40]}, status {str(bad[0][1])[:40]!r}) push never writes")
        bad = rows(
            "SELECT id FROM images WHERE typeof(size) != 'integer' OR typeof(mtime_ns) != 'integer' "
            "OR typeof(width) NOT IN ('integer', 'null') OR typeof(height) NOT IN ('integer', 'null') "
            "OR typeof(latitude) NOT IN ('real', 'integer', 'null') "
            "OR typeof(longitude) NOT IN ('real', 'integer', 'null') OR typeof(camera) NOT IN ('text', 'null') "
            "OR typeof(country) NOT IN ('text', 'null') OR typeof(region) NOT IN ('text', 'null') "
            "OR typeof(city) NOT IN ('text', 'null') "
            "OR (taken_at IS NOT NULL AND (typeof(taken_at) != 'text' OR datetime(taken_at) IS NULL)) LIMIT 1"
        )
        if bad:
            raise Bad(f"has photo id {bad[0][0]} with a size, date, camera or place not of the type the indexer writes")
        photos = rows("SELECT count(*) FROM images")[0][0]
        if photos != meta["published"]["photos"]:
            raise Bad(
                f"has {photos} photos in its catalog, but its published record says {meta['published']['photos']}"
            )
        for table in ("images", "vectors"):
            bad = rows(
                f"SELECT content_hash FROM {table}  -- reader.CONTENT_HASH, in SQL\n"
                f" WHERE content_hash IS NULL OR typeof(content_hash) != 'text' "
                "OR length(content_hash) != 32 OR content_hash GLOB '*[^0-9a-f]*' LIMIT 1"
            )
            if bad:
                raise Bad(f"has the content hash {str(bad[0][0])[:80]!r} in its {table} table, not 32 hex digits")
        dim = int(meta["dim"])
        bad = rows(
            "SELECT content_hash, length(vector) FROM vectors WHERE typeof(vector) != 'blob' "
            "OR length(vector) != :size LIMIT 1",
            size=2 * dim,
        )
        if bad:
            raise Bad(f"stores a vector of {bad[0][1]} bytes for {bad[0][0]}, not {2 * dim} ({dim} float16 values)")
        bad = rows(
            "SELECT images.id FROM images LEFT JOIN vectors ON vectors.content_hash = images.content_hash "
            "WHERE vectors.content_hash IS NULL LIMIT 1"
        )
        if bad:
            raise Bad(f"has photo id {bad[0][0]} with no stored vector")
        for image_id, raw in rows("SELECT id, relpath FROM images"):
            relpath = decode_relpath(raw) if isinstance(raw, bytes) else None
            if relpath is None or not _inside(relpath, ntpath):
                shown = relpath if relpath is not None else raw
                raise Bad(f"has photo id {image_id} at {str(shown)[:200]!r}, not a path inside its own folders")


def _check_text(catalog) -> None:
    """The words, OCR text and full-text index search reads: the tables push writes (a view or a plain table named
    text_fts would run on every search), rows of published photos only, texts of the type and length the indexer
    stores, and no OCR error message (one may name a path). A catalog from before text has none of the tables."""
    from sqlalchemy import text

    from .catalog import FULLTEXT_DDL
    from .errors import PublishedIndexError as Bad
    from .ocr import MAX_TEXT_CHARS

    longest = 4 * MAX_TEXT_CHARS  # normalised full-text columns: folding (NFKC, ß -> ss) can lengthen a text
    with catalog.engine.connect() as connection:

        def rows(sql: str, **values):
            return connection.execute(text(sql), values).all()

        found = dict(rows("SELECT name, sql FROM sqlite_master WHERE name IN ('words', 'ocr_text', 'text_fts')"))
        if not found:
            return
        fulltext = FULLTEXT_DDL[0].replace(" IF NOT EXISTS", "")
        if set(found) != {"words", "ocr_text", "text_fts"} or found["text_fts"] != fulltext:
            raise Bad(
                f"has text tables ({', '.join(sorted(found))}) or a full-text index "
                f"({str(found.get('text_fts'))[:120]!r}) push never writes"
            )
        shadows = rows("SELECT name, type FROM sqlite_master WHERE name GLOB 'text_fts_*' AND type != 'table'")
        if shadows:  # FTS5 reads its own tables on every search: a view there would run instead
            raise Bad(f"has a {shadows[0][1]} {str(shadows[0][0])[:80]!r} where the full-text index keeps a table")
        checks = [
            ("words", "words about a photo that is not in it", "image_id NOT IN (SELECT id FROM images)"),
            (
                "words",
                "words that are not texts or are longer than the indexer stores",
                " OR ".join(
                    f"typeof({c}) != 'text' OR length({c}) > :limit" for c in ("filename", "keywords", "description")
                ),
            ),
            (
                "ocr_text",
                "OCR text of a content it does not publish, not a text, longer than the indexer stores, or "
                "with an error message",
                "content_hash NOT IN (SELECT content_hash FROM images) OR typeof(text) != "
                "'text' OR length(text) > :limit OR error IS NOT NULL",
            ),
            (
                "text_fts",
                "full-text rows of no published photo, or not texts of the length the indexer stores",
                "rowid NOT IN (SELECT id FROM images) OR "
                + " OR ".join(
                    f"typeof({c}) != 'text' OR length({c}) > :longest"
                    for c in ("filename", "keywords", "description", "ocr")
                ),
            ),
        ]
        for table, what, where in checks:
            if rows(f"SELECT 1 FROM {table} WHERE {where} LIMIT 1", limit=MAX_TEXT_CHARS, longest=longest):
                raise Bad(f"has {what} (table {table})")


def _inside(relpath: str, ntpath) -> bool:
    """A relative path below its root: no absolute path, drive, NUL, empty, '.' or '..' part (either separator)."""
    if not relpath or "\x00" in relpath or relpath.startswith(("/", "\\")) or ntpath.splitdrive(relpath)[0]:
        return False
    parts = relpath.replace("\\", "/").split("/")
    return all(part not in ("", ".", "..") for part in parts)


def _check_vector_file(index_dir: Path, meta: dict) -> None:
    """The FAISS file is there and no bigger than its photos' vectors can make it (read before FAISS parses it)."""
    from .errors import PublishedIndexError as Bad
    from .vectors import INDEX_FILE

    path = index_dir / INDEX_FILE
    try:
        size = path.stat().st_size
    except OSError:
        raise Bad(f"has no {INDEX_FILE}") from None
    dim, photos, lists = int(meta["dim"]), meta["published"]["photos"], meta.get("nlist") or 0
    limit = photos * (4 * dim + 16) + lists * (4 * dim + 64) + FAISS_HEADER_ALLOWANCE
    if not path.is_file() or size > limit:
        raise Bad(
            f"has a {INDEX_FILE} of {size} bytes, more than {photos} vectors of {dim} dimensions take "
            f"({limit} bytes at most)"
        )


def _check_adapter(index_dir: Path, meta: dict) -> None:
    """``adapter/`` holds exactly what push copies: a peft LoRA config for the index's model and safetensors
    weights whose header reads (never a pickle, which unpickling would run)."""
    import json
    import re

    from .errors import PublishedIndexError as Bad

    if meta.get("adapter") is None:
        return
    folder = index_dir / ADAPTER
    if not (folder / "adapter_config.json").is_file():
        raise Bad(f"was built with an adapter, but {ADAPTER}/adapter_config.json is missing from it")
    names = {path.name for path in folder.iterdir()}
    if names not in ({ADAPTER_CONFIG, weights} for weights in ADAPTER_WEIGHTS):
        raise Bad(
            f"has {ADAPTER}/ holding {', '.join(sorted(names))}, not {ADAPTER_CONFIG} and one weights file "
            f"({' or '.join(ADAPTER_WEIGHTS)})"
        )
    config_path = folder / ADAPTER_CONFIG
    try:
        if config_path.stat().st_size > ADAPTER_CONFIG_LIMIT:
            raise ValueError(f"over {ADAPTER_CONFIG_LIMIT} bytes")
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise Bad(f"has an {ADAPTER}/adapter_config.json that cannot be read ({str(error)[:120]})") from None
    if config.get("peft_type") not in PEFT_TYPES:
        raise Bad(f"has an adapter of peft_type {str(config.get('peft_type'))[:40]!r}, not {' or '.join(PEFT_TYPES)}")
    if config.get("base_model_name_or_path") != meta["model_id"]:
        raise Bad(
            f"has an adapter for the model {str(config.get('base_model_name_or_path'))[:200]!r}, not the "
            f"index's {meta['model_id']!r}"
        )
    for key, allowed in ADAPTER_CONFIG_FIXED.items():  # settings that load code or files: only peft's defaults
        if key in config and config[key] not in allowed:
            raise Bad(
                f"has an adapter config setting {key!r} ({str(config.get(key))[:80]!r}) that push never "
                "writes and the app does not follow"
            )
    mapping = config.get("auto_mapping")  # peft records the model class; AutoPeftModel (not used here) imports it
    if mapping is not None and not (
        isinstance(mapping, dict)
        and set(mapping) <= {"base_model_class", "parent_library"}
        and re.fullmatch(r"\w+", str(mapping.get("base_model_class")))
        and re.fullmatch(r"transformers(\.\w+)*", str(mapping.get("parent_library")))
    ):
        raise Bad(
            f"has an adapter config setting 'auto_mapping' ({str(mapping)[:80]!r}) that names no transformers "
            "model class"
        )
    safetensors, pickled = (folder / name for name in ADAPTER_WEIGHTS)
    if safetensors.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(safetensors), framework="numpy") as weights:
                if not list(weights.keys()):
                    raise ValueError("no tensors")
        except Exception as error:  # noqa: BLE001 - any failure to read the header: not what push copies
            raise Bad(
                f"has {ADAPTER}/{safetensors.name} that is not a readable safetensors file "
                f"({first_line(error) or type(error).__name__})"
            ) from None
    else:
        _check_pickled_weights(pickled)


def _check_pickled_weights(path: Path) -> None:
    """An adapter saved the older way: read with torch's weights-only unpickler (what peft uses too), which runs
    nothing; a pickle that needs more than tensors and containers is refused here, named, before any model loads."""
    import pickle

    import torch

    from .errors import PublishedIndexError as Bad

    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise Bad(
            f"has {ADAPTER}/{path.name} that is a pickle holding more than tensors (loading it would run its "
            f"code), or is damaged: refused ({first_line(error)[:160]})"
        ) from None
    if (
        not isinstance(weights, dict)
        or not weights
        or not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in weights.items())
    ):
        raise Bad(f"has {ADAPTER}/{path.name} that is not a dictionary of named tensors")


def _whole(value, low: int, high: int | None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _hub_id(value) -> bool:
    """ORG/NAME as the Hub spells a repo id (what push records): never a local folder or a URL."""
    if not isinstance(value, str) or value.count("/") != 1 or value.startswith((".", "/", "~")):
        return False
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True
