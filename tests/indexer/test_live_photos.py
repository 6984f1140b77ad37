"""Live Photos (a still beside its .MOV) and motion photos (a JPEG with its MP4 appended) are one item each."""

from __future__ import annotations

import io
import json
import os

import pytest
from PIL import Image

from indexer import IndexStore, verify
from search_app.results import result_of

from .conftest import run_cli
from .test_video import SCENES, build, rows_of
from .videos import make_video, scene_picture


def still(path, seed=0, xmp: bytes | None = None) -> bytes:
    """A JPEG of ``scene_picture(seed)`` (with an XMP packet when given), written to ``path``; returns its bytes."""
    buffer = io.BytesIO()
    scene_picture(seed).save(buffer, "JPEG", quality=90, **({"xmp": xmp} if xmp else {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def records_by_name(index_dir) -> dict:
    with IndexStore.open(index_dir) as store:
        return {os.path.basename(r.path): r for r in store.records(store.ids()) if r is not None}


@pytest.mark.slow  # runs `indexer search` in a subprocess
def test_a_live_photo_is_one_photo_whose_record_names_its_clip(tmp_path, tiny_siglip):
    folder = tmp_path / "phone"
    still(folder / "IMG_0001.JPG")
    make_video(folder / "img_0001.mov", SCENES[:2])  # the case of the names may differ
    make_video(folder / "IMG_0002.MOV", SCENES[2:])  # no still: a video of its own
    index_dir = tmp_path / "index"
    summary = build(folder, index_dir, tiny_siglip)
    assert (summary.added, summary.errors, summary.warnings) == (2, [], [])
    rows = rows_of(index_dir)
    assert not [row for row in rows if row["relpath"].startswith(b"img_0001.mov")]  # the clip is no result
    records = records_by_name(index_dir)
    photo = records["IMG_0001.JPG"]
    assert (photo.media_type, photo.motion) == ("photo", "live")
    assert photo.motion_clip == str(folder.resolve() / "img_0001.mov")
    assert records["IMG_0002.MOV"].media_type == "video" and records["IMG_0002.MOV"].motion is None
    api = result_of(photo, 0.5).to_json()
    assert api["media_type"] == "photo" and api["live"] is True and api["motion"] == "live"
    assert api["motion_clip"].endswith("img_0001.mov")
    assert "live" not in result_of(records["IMG_0002.MOV"], 0.5).to_json()
    assert verify(index_dir).clean
    query = tmp_path / "query.png"
    scene_picture(0).save(query)
    run = run_cli("search", "--index", index_dir, "--image", query, "-k", "2", "--json")
    assert run.returncode == 0, run.stderr
    found = {os.path.basename(r["path"]): r for r in json.loads(run.stdout)["results"]}
    assert (found["IMG_0001.JPG"]["media_type"], found["IMG_0001.JPG"]["live"]) == ("photo", True)
    assert found["IMG_0001.JPG"]["motion_clip"] == str(folder.resolve() / "img_0001.mov")
    assert found["IMG_0002.MOV"]["media_type"] == "video" and "live" not in found["IMG_0002.MOV"]


def test_deleting_or_adding_the_clip_later_updates_the_item(tmp_path, tiny_siglip):
    folder = tmp_path / "phone"
    still(folder / "IMG_0003.JPEG")
    index_dir = tmp_path / "index"
    build(folder, index_dir, tiny_siglip)
    assert records_by_name(index_dir)["IMG_0003.JPEG"].motion is None
    clip = make_video(folder / "IMG_0003.MOV", SCENES[:1])
    added = build(folder, index_dir, tiny_siglip)
    assert added.added == 0 and added.embedded == 0  # the still is known: no new vector, no video
    records = records_by_name(index_dir)
    assert set(records) == {"IMG_0003.JPEG"} and records["IMG_0003.JPEG"].motion == "live"
    assert verify(index_dir).clean
    again = build(folder, index_dir, tiny_siglip)
    assert (again.unchanged, again.updated, again.added) == (1, 0, 0)
    os.remove(clip)
    build(folder, index_dir, tiny_siglip)
    photo = records_by_name(index_dir)["IMG_0003.JPEG"]
    assert (photo.motion, photo.motion_clip) == (None, None)
    assert verify(index_dir).clean


def test_a_clip_indexed_as_a_video_before_its_still_arrived_folds_into_the_still(tmp_path, tiny_siglip):
    folder = tmp_path / "phone"
    make_video(folder / "IMG_0004.MOV", SCENES[:2])
    index_dir = tmp_path / "index"
    build(folder, index_dir, tiny_siglip)
    assert records_by_name(index_dir)["IMG_0004.MOV"].media_type == "video"
    still(folder / "IMG_0004.JPG")
    summary = build(folder, index_dir, tiny_siglip)
    assert summary.added == 1 and summary.removed == 1
    rows = rows_of(index_dir)
    assert [row["relpath"] for row in rows] == [b"IMG_0004.JPG"] and rows[0]["media_type"] == "photo"
    assert verify(index_dir).clean


def test_hostile_pairs_are_reported_with_a_reason_and_never_stop_the_build(tmp_path, tiny_siglip):
    folder = tmp_path / "phone"
    still(folder / "IMG_0005.JPG")
    (folder / "IMG_0005.MOV").write_bytes(os.urandom(4000))  # a clip that is no video
    (folder / "IMG_0006.JPG").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")  # a corrupt still
    make_video(folder / "IMG_0006.MOV", SCENES[:1])
    index_dir = tmp_path / "index"
    summary = build(folder, index_dir, tiny_siglip)
    assert [os.path.basename(error.path) for error in summary.errors] == ["IMG_0006.JPG"]
    assert "Live Photo clip IMG_0006.MOV is not indexed either" in summary.errors[0].reason
    [warning] = summary.warnings
    assert (
        "IMG_0005.JPG" in warning and "Live Photo clip IMG_0005.MOV" in warning and "cannot open as a video" in warning
    )
    photo = records_by_name(index_dir)["IMG_0005.JPG"]
    assert photo.status == "ok" and photo.motion is None
    again = build(folder, index_dir, tiny_siglip)  # nothing changed: nothing re-read, nothing repeated
    assert (again.unchanged, again.errors, again.warnings) == (2, [], [])
    assert verify(index_dir).clean


def motion_xmp(offset: int, container: bool = False) -> bytes:
    if container:
        items = (
            '<Container:Directory><rdf:Seq><rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" '
            'Item:Semantic="Primary" Item:Length="0" Item:Padding="0"/></rdf:li><rdf:li rdf:parseType="Resource">'
            f'<Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" Item:Length="{offset}"/></rdf:li>'
            "</rdf:Seq></Container:Directory>"
        )
        attributes = 'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1"'
    else:
        items = ""
        attributes = f'GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1" GCamera:MicroVideoOffset="{offset}"'
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
        'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
        f'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" {attributes}>{items}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def motion_photo(path, mp4: bytes, container: bool = False, offset: int | None = None):
    """A JPEG whose XMP names the MP4 appended to it (``offset``: a lie about where it starts)."""
    picture = still(path, xmp=motion_xmp(offset if offset is not None else len(mp4), container))
    path.write_bytes(picture + mp4)


def test_a_motion_photo_is_one_photo_flagged_as_moving_and_a_bad_offset_is_a_reasoned_warning(tmp_path, tiny_siglip):
    folder = tmp_path / "pixel"
    mp4 = make_video(tmp_path / "clip.mp4", SCENES[:2]).read_bytes()
    motion_photo(folder / "PXL_old.jpg", mp4)
    motion_photo(folder / "PXL_new.MP.jpg", mp4, container=True)
    motion_photo(folder / "PXL_lie.jpg", mp4, offset=10**9)  # past the start of the file
    motion_photo(folder / "PXL_off.jpg", mp4, offset=len(mp4) - 100)  # not where the MP4 starts
    still(folder / "plain.jpg")
    index_dir = tmp_path / "index"
    summary = build(folder, index_dir, tiny_siglip)
    assert (summary.added, summary.errors) == (5, [])
    warnings = sorted(summary.warnings)
    assert len(warnings) == 2
    assert "PXL_lie.jpg" in warnings[0] and "1,000,000,000 bytes before the end" in warnings[0]
    assert "PXL_off.jpg" in warnings[1] and "no MP4 video where its XMP says" in warnings[1]
    records = records_by_name(index_dir)
    assert {name: record.motion for name, record in records.items()} == {
        "PXL_old.jpg": "motion_photo",
        "PXL_new.MP.jpg": "motion_photo",
        "PXL_lie.jpg": None,
        "PXL_off.jpg": None,
        "plain.jpg": None,
    }
    assert all(record.media_type == "photo" for record in records.values())
    api = result_of(records["PXL_old.jpg"], 0.5).to_json()
    assert (api["media_type"], api["motion"], api["live"], api["motion_clip"]) == ("photo", "motion_photo", True, None)
    with Image.open(folder / "PXL_old.jpg") as image:  # the trailing MP4 does not disturb the picture
        assert image.size == scene_picture(0).size
    assert verify(index_dir).clean


@pytest.mark.parametrize("container", [False, True], ids=["MicroVideoOffset", "Container:Directory"])
def test_the_video_inside_a_motion_photo_is_found_again_for_the_viewer(tmp_path, container):
    """The viewer reads the MP4's place from the file as it is now: exactly the appended bytes, or a reason."""
    from indexer.reader import motion_photo_video

    mp4 = make_video(tmp_path / "clip.mp4", SCENES[:1]).read_bytes()
    path = tmp_path / "PXL.jpg"
    motion_photo(path, mp4, container=container)
    start, length = motion_photo_video(str(path))
    assert path.read_bytes()[start : start + length] == mp4
    motion_photo(path, mp4, offset=len(mp4) - 100)  # the file changed since indexing: its XMP now lies
    with pytest.raises(ValueError, match="no MP4 video where its XMP says"):
        motion_photo_video(str(path))
    still(path)
    with pytest.raises(ValueError, match="PXL.jpg: its XMP names no motion photo video"):
        motion_photo_video(str(path))
    path.write_bytes(b"not a picture")
    with pytest.raises(ValueError, match="PXL.jpg: not a readable JPEG"):
        motion_photo_video(str(path))


def test_the_viewer_names_a_live_photos_clip_and_a_motion_photo(tmp_path):
    from search_app.results import SearchResult
    from search_app.ui import SearchUI

    def facts(**motion) -> str:
        result = SearchResult(
            path=str(tmp_path / "IMG_1.JPG"),
            score=0.5,
            size=10,
            taken_at=None,
            image_id=1,
            content_hash="0" * 32,
            relpath="IMG_1.JPG",
            **motion,
        )
        return SearchUI._facts(None, result)  # type: ignore[arg-type]  # it reads only the result

    assert "Live Photo (clip <bdi>IMG_1&lt;b&gt;.MOV</bdi>)" in facts(
        motion="live", motion_clip=str(tmp_path / "IMG_1<b>.MOV")
    )
    assert "Motion photo" in facts(motion="motion_photo") and "Live" not in facts()


def test_a_published_catalogs_clip_path_cannot_point_outside_its_folder():
    """motion_clip comes from the catalog, which may be a stranger's (a published index): only a plain relative
    path inside the root becomes a clip path."""
    from indexer.store import _clip_path

    assert _clip_path("/photos", b"trip/IMG_1.MOV") == os.path.join("/photos", "trip/IMG_1.MOV")
    for hostile in (
        b"/etc/passwd",
        b"../../etc/passwd",
        b"trip/../../x.mov",
        b"a\\..\\..\\x.mov",
        b"a\0b",
        b"",
        "text",
    ):
        assert _clip_path("/photos", hostile) is None, hostile
