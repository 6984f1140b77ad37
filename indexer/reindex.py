"""Re-embed a whole index with model + adapter as a new generation, then swap it in atomically.

``trainer adapt --apply`` uses it: the old index serves until the swap, a crash before the
swap leaves it untouched, and a search engine that has it open notices the new generation.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
from pathlib import Path

from mme5.atomic import fsync_dir, replace_folder

ADAPTERS_DIR = "adapters"  # adapters applied to the index, kept inside it so it does not depend on a run folder


def exchange(a: Path, b: Path) -> None:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); three renames elsewhere."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            fsync_dir(Path(a).parent)
            return
    parked = a.with_name(f".{a.name}.previous")
    os.replace(a, parked)  # for a moment no index: the app keeps serving what it has open
    os.replace(b, a)
    os.replace(parked, b)
    fsync_dir(Path(a).parent)


def _copy_folder(source: Path, target: Path) -> None:
    """``target`` becomes a complete copy of ``source`` or stays absent (a half copy is never under its name)."""
    temporary = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)  # left by a run killed mid-copy
    shutil.copytree(source, temporary)
    replace_folder(temporary, target)


def reindex_with_adapter(index_dir: Path, model: str, adapter: Path, device=None, show_progress=True) -> dict:
    """Re-embed every photo with model+adapter as a new index generation; the old one serves until the swap.

    The adapter is copied into the index (``adapters/``) so the index does not depend on the run
    folder; the new index is built beside the old one under the old one's write lock (no build
    can slip in between), then the two folders are exchanged atomically. A crash before the
    exchange leaves the old index untouched (the half-built sibling is resumed next time).

    Returns the number of images, the adapter's path inside the index, the seconds taken and
    how many files could not be read (as in the old index).
    """
    from mme5 import load_embedder

    from .build import build_index
    from .lock import WriteLock
    from .store import IndexStore

    index_dir = Path(index_dir).absolute()
    adapter = Path(adapter)
    with IndexStore.open(index_dir) as store:
        roots, index_type = store.roots, store.meta.get("index_type_request")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(adapter.iterdir()) if p.is_file())).hexdigest()[:12]
    kept = index_dir / ADAPTERS_DIR / f"adapter-{digest}"
    sibling = index_dir.with_name(f".{index_dir.name}.adapting")
    with WriteLock(index_dir):
        for target in (kept, sibling / ADAPTERS_DIR / kept.name):
            if not target.exists():
                _copy_folder(adapter, target)
        embedder = load_embedder(model, device=device, adapter=str(kept))  # the path it keeps after the swap
        summary = build_index(
            [Path(r) for r in roots], sibling, embedder, show_progress=show_progress, index_type=index_type
        )
        exchange(index_dir, sibling)
    shutil.rmtree(sibling, ignore_errors=True)  # now the old generation
    return {
        "images": summary.images,
        "adapter": str(kept),
        "seconds": round(summary.seconds, 2),
        "unreadable": len(summary.errors),
    }
