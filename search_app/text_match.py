"""Text hits in a search: photos whose words (OCR text, file and folder names, keywords, captions) hold the typed
query, put ahead of the vector ranking on one page.

The matching and the fusion order live in indexer/fulltext.py (the CLI's ``search --text`` uses them too); here
they meet the app's ranking: filters, excluded ids, identical copies and pages. The fused list is the text hits
(reciprocal-rank fusion of their text rank and vector rank, filtered and folded like any hit) followed by the
vector ranking without them, so an exact text hit is never pushed off page 1 by weak vector hits; a query without
a text hit returns None and ranks exactly as the vector search alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from indexer.fulltext import fuse, text_hits

from .results import SearchPage, result_of, with_copy, with_moment


def text_first(opened, vector: np.ndarray, opts, text: str, fetch, passes, vector_page) -> SearchPage | None:
    """One page of the fused ranking, or None when no photo passing the filters matches ``text``.

    ``fetch(ids)`` gives catalog records, ``passes(record)`` applies filters, exclusions and the path guard,
    ``vector_page(options)`` ranks by vector alone (ranking.rank without text)."""
    hits = text_hits(opened.store.catalog, text)
    if not hits:
        return None
    ids = [hit.image_id for hit in hits]
    records = dict(zip(ids, fetch(ids)))
    hits = [hit for hit in hits if passes(records[hit.image_id])]
    if not hits:
        return None
    query = np.asarray(vector, dtype=np.float32).reshape(-1)
    stored = opened.store.vectors(np.asarray([hit.image_id for hit in hits], dtype=np.int64))
    scores = dict(zip([hit.image_id for hit in hits], (stored @ query).tolist()))
    groups: dict[object, list] = {}  # identical copies fold into one result, at the best copy's place
    videos: set[int] = set()
    frame_of: dict[str, object] = {}  # a keyframe's content (video content + second) -> its group
    group_of: dict[int, object] = {}  # video -> its group (a copy of a video folds into the first copy)
    for hit in fuse(hits, scores):
        record = records[hit.image_id]
        if record.video_key is not None:  # a video's frames with the text: one result, its best moment first
            videos.add(record.video_key)
            key = group_of.get(record.video_key)
            if key is None:
                key = ("video", record.video_key)
                if opts.collapse_duplicates and record.content_hash:
                    key = frame_of.get(record.content_hash, key)
                group_of[record.video_key] = key
            if opts.collapse_duplicates and record.content_hash:
                frame_of.setdefault(record.content_hash, key)
        else:
            key = record.content_hash if opts.collapse_duplicates and record.content_hash else ("id", record.id)
        groups.setdefault(key, []).append((hit, record))
    results = []
    for key, members in groups.items():
        if isinstance(key, tuple) and key[0] == "video":
            hit, record = members[0]
            result = replace(result_of(record, float(scores[hit.image_id])), text_match=hit)
            for other, frame in members[1:]:
                result = with_moment(result, frame.timestamp_s, float(scores[other.image_id]))
                if frame.video_key != record.video_key:
                    result = with_copy(result, frame.path)
            results.append(result)
            continue
        hit, record = min(members, key=lambda member: member[1].id)  # shown as the vector ranking shows copies
        result = replace(result_of(record, float(scores[hit.image_id])), text_match=hit)
        for _other, copy in members:
            if copy.id != record.id:
                result = with_copy(result, copy.path)
        results.append(result)
    head = results[opts.offset : opts.offset + opts.k]
    wanted = opts.k - len(head)
    shown_videos = _whole_videos(opened.store.catalog, videos)  # not shown a second time by the vector ranking
    rest = vector_page(
        replace(
            opts,
            exclude=(*opts.exclude, *scores, *shown_videos),
            offset=max(0, opts.offset - len(results)),
            k=max(wanted, 1),
        )
    )
    tail = rest.results[:wanted]
    more = opts.offset + opts.k < len(results) or (rest.next_offset is not None if wanted else bool(rest.results))
    shown = head + tail
    return replace(rest, results=shown, offset=opts.offset, next_offset=opts.offset + len(shown) if more else None)


SOURCE_LABELS = {
    "ocr": "text in the photo",
    "filename": "file name",
    "keywords": "keywords",
    "description": "description",
}


def snippet_html(match) -> str:
    """A text hit for the UI: where it was found, then its snippet with the matched words in <mark> and every
    other character escaped (the text is the photo's: OCR output, a file name, a sidecar someone wrote)."""
    import html

    parts, last = [], 0
    for start, end in match.marks:
        if start < last:
            continue
        parts += [html.escape(match.snippet[last:start]), "<mark>", html.escape(match.snippet[start:end]), "</mark>"]
        last = end
    parts.append(html.escape(match.snippet[last:]))
    return f"{SOURCE_LABELS.get(match.source, 'text')}: “{''.join(parts)}”"


def _whole_videos(catalog, video_ids: set[int]) -> list[int]:
    if not video_ids:
        return []
    from indexer.video_rows import whole_video_rows

    with catalog.session() as session:
        return whole_video_rows(session, video_ids)
