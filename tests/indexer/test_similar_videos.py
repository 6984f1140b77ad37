"""Similar groups with videos: a re-encoded, resized or trimmed copy folds with its original; a video's own
keyframes are never duplicates of each other, and videos never group with photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import ImageEnhance

from indexer import IndexStore, build_index
from indexer.similar import similar_groups

from .videos import make_video, scene_picture

THRESHOLD = 0.98  # the tiny SigLIP: a resized picture scores 1.000, one 3 % brighter 0.99, distinct ones ≤ 0.93


def test_copies_of_a_clip_group_together_and_nothing_else_joins(tmp_path, tiny_siglip):
    folder = tmp_path / "clips"
    scenes = ((10, 3.0), (11, 3.0), (12, 3.0))
    make_video(folder / "original.mp4", scenes)
    make_video(folder / "copy-large.mkv", scenes, codec="libx265", size=(320, 240))  # re-encoded, resized
    make_video(folder / "trimmed.webm", scenes[:2], codec="libvpx-vp9")  # its first six seconds, another codec
    make_video(folder / "other.mp4", ((13, 3.0), (14, 3.0), (15, 3.0)))  # a different clip
    # a still shot that drifts a little: a second keyframe after max_gap_s (10 s), with a near-identical vector
    brighter = ImageEnhance.Brightness(scene_picture(20)).enhance(1.03)
    make_video(folder / "steady.mp4", ((20, 10.5), (21, 2.0)), pictures={21: brighter})
    scene_picture(13).save(folder / "frame-of-other.png")  # a photo of one of other.mp4's keyframes
    index_dir = tmp_path / "index"
    build_index([folder], index_dir, tiny_siglip, batch_size=4, show_progress=False)
    with IndexStore.open(index_dir) as store:
        records = [r for r in store.records(store.ids()) if r is not None]
        steady = [r.id for r in records if Path(r.path).name == "steady.mp4"]
        assert len(steady) == 2  # two keyframes
        vectors = store.vectors(np.asarray(steady))
        assert float(vectors[0] @ vectors[1]) >= THRESHOLD  # so a keyframe-by-keyframe grouping would join them
        photo = next(r.id for r in records if r.media_type == "photo")
        other = [r.id for r in records if Path(r.path).name == "other.mp4"]
        assert max(float(store.vectors([photo])[0] @ v) for v in store.vectors(np.asarray(other))) >= THRESHOLD
        groups = similar_groups(store, THRESHOLD)
    names = [[Path(member.path).name for member in group.members] for group in groups]
    assert names == [["copy-large.mkv", "original.mp4", "trimmed.webm"]], names  # the largest first
    members = groups[0].to_json()["members"]
    assert all(member["media_type"] == "video" for member in members)
    assert members[0]["score"] == 1.0 and members[1]["score"] >= THRESHOLD
