"""The engines' contract (indexer/engines.py): one Embedded record per file, the decisions left to the build."""

from __future__ import annotations

import shutil

import numpy as np

from indexer.engines import LocalEngine
from indexer.files import scan_root
from indexer.reader import DecodeBudget, hash_file

REJECTED = "the model could not embed this image (RuntimeError: shape mismatch in vision tower)"


def test_local_engine_streams_each_file_once_with_its_vector_or_why_the_model_refused_it(
    photos, tiny_mllama, monkeypatch
):
    photos.jpeg("a.jpg", 64, 48, seed=1)
    shutil.copy(photos.folder / "a.jpg", photos.folder / "b-copy-of-a.jpg")  # same content: embedded once
    photos.jpeg("c.jpg", 80, 48, seed=2)  # content the catalog already stores: not decoded, not embedded
    photos.jpeg("d.jpg", 96, 48, seed=3)  # the model chokes on it
    photos.raw("e.jpg", b"not an image")  # unreadable: the reader's reason, no model work
    original = tiny_mllama.encode_images
    embedded_sizes = []

    def picky(images, batch_size=8, **kwargs):
        if any(image.width == 96 for image in images):
            raise RuntimeError("shape mismatch in vision tower")
        embedded_sizes.extend(image.size for image in images)
        return original(images, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(tiny_mllama, "encode_images", picky)
    entries = sorted(scan_root(str(photos.folder)), key=lambda entry: entry.relpath)
    engine = LocalEngine(workers=2)
    known = frozenset({hash_file(str(photos.folder / "c.jpg"))})
    stream = list(engine.results(entries, tiny_mllama, known, batch_size=2, budget=DecodeBudget()))

    assert [record.position for record in stream] == list(range(len(entries)))  # every file once, in order
    by_name = {entries[record.position].relpath: record for record in stream}
    a, copy, c, d, e = (by_name[name] for name in ("a.jpg", "b-copy-of-a.jpg", "c.jpg", "d.jpg", "e.jpg"))
    expected = original([str(photos.folder / "a.jpg")])[0]
    np.testing.assert_allclose(a.vector, expected, atol=1e-5)
    assert a.failure is None and a.result.content_hash == copy.result.content_hash
    assert (copy.vector, copy.failure) == (None, None)  # the build reuses a's vector
    assert (c.vector, c.failure) == (None, None) and c.result.content_hash in known
    assert d.vector is None and d.failure == REJECTED
    assert e.vector is None and e.failure is None and e.result.error
    assert all(record.result.image is None for record in stream)  # pixels are not kept once embedded
    assert embedded_sizes.count((64, 48)) == 1 and (80, 48) not in embedded_sizes
    assert engine.peak_decode_pixels > 0


def test_stopping_the_stream_early_stops_the_reads(photos, tiny_mllama, monkeypatch):
    import indexer.engines

    for i in range(30):
        photos.jpeg(f"{i:02}.jpg", seed=i)
    entries = sorted(scan_root(str(photos.folder)), key=lambda entry: entry.relpath)
    reads = []
    original = indexer.engines.read_file
    monkeypatch.setattr(indexer.engines, "read_file", lambda entry, *a: reads.append(entry) or original(entry, *a))
    stream = LocalEngine(workers=1).results(entries, tiny_mllama, frozenset(), batch_size=1, budget=DecodeBudget())
    first = next(stream)
    stream.close()  # as the build does on Ctrl-C or an error: the reader pool is shut down, queued reads dropped
    assert first.position == 0 and first.vector is not None
    assert len(reads) < 10  # a read-ahead window, not the whole folder


def _looks_like(image, picture) -> bool:
    """Whether a decoded keyframe shows ``picture`` (codec loss aside)."""
    size = (32, 24)
    mine = np.asarray(image.convert("RGB").resize(size), dtype=np.float32)
    return float(np.abs(mine - np.asarray(picture.resize(size), dtype=np.float32)).mean()) < 20


def test_a_video_is_one_record_with_a_vector_per_keyframe_each_content_embedded_once(
    tmp_path, tiny_mllama, monkeypatch
):
    from indexer.video import keyframe_hash

    from .videos import make_video, scene_picture

    folder = tmp_path / "clips"
    make_video(folder / "a.mp4", ((0, 4.0), (1, 4.0), (2, 4.0), (3, 4.0)))
    shutil.copy(folder / "a.mp4", folder / "b-copy.mp4")  # same content: its keyframes are not embedded again
    digest = hash_file(str(folder / "a.mp4"))
    original = tiny_mllama.encode_images
    embedded = []

    def picky(images, batch_size=8, **kwargs):
        if any(_looks_like(image, scene_picture(2)) for image in images):
            raise RuntimeError("shape mismatch in vision tower")
        embedded.extend(images)
        return original(images, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(tiny_mllama, "encode_images", picky)
    entries = sorted(scan_root(str(folder)), key=lambda entry: entry.relpath)
    known = frozenset({keyframe_hash(digest, 12.0)})  # the 12 s keyframe's vector is stored already
    stream = list(LocalEngine(workers=2).results(entries, tiny_mllama, known, batch_size=2, budget=DecodeBudget()))

    assert [record.position for record in stream] == [0, 1]  # one record per file, not per keyframe
    video, copy = stream
    assert video.vector is not None and video.failure is None  # the first keyframe: the file's own vector
    assert [round(keyframe.timestamp_s) for keyframe in video.keyframes] == [4, 8, 12]
    assert [keyframe.content_hash for keyframe in video.keyframes] == [
        keyframe_hash(digest, keyframe.timestamp_s) for keyframe in video.keyframes
    ]
    at4, at8, at12 = video.keyframes
    assert at4.vector is not None and at4.vector.shape == video.vector.shape and at4.failure is None
    assert at8.vector is None and at8.failure == REJECTED  # isolated: the video's other keyframes are embedded
    assert (at12.vector, at12.failure) == (None, None) and at12.content_hash in known  # not embedded again
    assert copy.vector is None and [(k.content_hash, k.vector, k.failure) for k in copy.keyframes] == [
        (k.content_hash, None, None) for k in video.keyframes
    ]  # the build reuses the first copy's outcomes
    assert len(embedded) == 2  # the first keyframe and the 4 s one, once each
    assert all(record.result.image is None and record.result.keyframes == [] for record in stream)  # no pixels kept
