"""Does an embedder produce vectors in an index's space? One answer for build, search and the app.

Indexes record the model by content (``mme5.identity``). Indexes written before that recorded the model
path as typed (``"./models/x|dual|768|<prompts>"``); they keep opening: such a fingerprint is accepted
when it names the given model by path, as before, or when the folder it names has the given model's
content, and the meta is then rewritten in the new form.
"""

from __future__ import annotations

from pathlib import Path

from mme5.model_ref import ModelRef, ModelRefError

from .errors import IndexMismatchError, mismatch_message


def meta_updates(index_dir, meta: dict, embedder) -> dict:
    """{} when ``meta`` names ``embedder``'s vector space; the meta keys to rewrite when it names it in
    an older form or at a stale location; IndexMismatchError (what differs, what to do) otherwise."""
    stored = meta.get("fingerprint")
    if stored == embedder.fingerprint:
        return _location_update(meta, embedder)
    from mme5.identity import is_content_fingerprint

    if is_content_fingerprint(stored) or not _legacy_same(meta, embedder):
        raise IndexMismatchError(mismatch_message(index_dir, meta, embedder))
    return {"fingerprint": embedder.fingerprint, "identity": embedder.identity, **_location_update(meta, embedder)}


def record(embedder) -> dict:
    """The meta keys a new index stores about its model."""
    return {
        "model_id": ModelRef.canonical_of(embedder.model_id),
        "adapter": ModelRef.canonical_of(embedder.adapter),
        "fingerprint": embedder.fingerprint,
        "identity": embedder.identity,
        "family": embedder.family,
        "dim": embedder.dim,
        "prompt_version": embedder.prompt_version,
        "quantization": getattr(embedder, "quantization", None),
    }


def _location_update(meta: dict, embedder) -> dict:
    """Where the model lives now, when the recorded folder is gone (moved): the next open without --model works.
    A published index names its model by Hub id and its adapter inside itself: nothing to update."""
    updates: dict[str, str | None] = {}
    if meta.get("published"):
        return updates
    for key, given in (("model_id", embedder.model_id), ("adapter", embedder.adapter)):
        recorded = meta.get(key)
        if recorded and given and _is_path(recorded) and not _exists(recorded):
            updates[key] = ModelRef.canonical_of(given)
    return updates


def _is_path(text: str) -> bool:
    try:
        return ModelRef.parse(text).is_local
    except ModelRefError:  # a bare name: recorded as a folder name by an old index
        return True


def _exists(path: str) -> bool:
    """Whether a path exists; one this user may not look into counts as existing (nothing to update)."""
    try:
        return Path(path).expanduser().exists()
    except OSError:
        return True


def _legacy_same(meta: dict, embedder) -> bool:
    """An old path-based fingerprint: same family, size and prompts, and the same model and adapter by
    path (as the old check did, typed or absolute) or by content."""
    from mme5.identity import adapter_digest, model_digest

    identity = embedder.identity
    if identity.get("quantization") is not None:
        return False  # old indexes were all full precision
    if (meta.get("family"), _int(meta.get("dim")), meta.get("prompt_version")) != (
        embedder.family,
        embedder.dim,
        embedder.prompt_version,
    ):
        return False
    if not _same(meta.get("model_id"), embedder.model_id, identity["model"], model_digest):
        return False
    return _same(meta.get("adapter"), embedder.adapter, identity["adapter"], adapter_digest)


def _same(recorded: str | None, given: str | None, given_digest: str | None, digest_of) -> bool:
    if not recorded or not given:
        return not recorded and not given
    if recorded == given or ModelRef.canonical_of(recorded) == ModelRef.canonical_of(given):
        return True
    try:
        return digest_of(recorded) == given_digest and not str(given_digest).startswith("name:")
    except (OSError, ValueError):
        return False


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
