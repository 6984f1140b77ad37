"""search_app.private.hand_to_gradio: a checked file goes to Gradio as a link inside Gradio's own folder."""

from __future__ import annotations

import os
import stat

from search_app.private import hand_to_gradio


def test_a_file_is_linked_into_gradios_folder_once_and_privately(tmp_path, monkeypatch):
    gradio = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio))  # the test is about the folder Gradio serves from
    preview = tmp_path / "previews" / "abc-384.jpg"
    preview.parent.mkdir()
    preview.write_bytes(b"\xff\xd8 a preview")
    served = hand_to_gradio(preview)
    assert os.path.samefile(served, preview) and served.endswith("/abc-384.jpg")  # a hard link: no second copy
    assert os.path.realpath(served).startswith(f"{os.path.realpath(gradio)}/")  # Gradio's check resolves links
    assert stat.S_IMODE(os.stat(os.path.dirname(served)).st_mode) == 0o700
    assert hand_to_gradio(preview) == served  # shown again: the same link
    preview.unlink()
    preview.write_bytes(b"\xff\xd8 another preview")  # replaced (new content, new inode): a new link
    again = hand_to_gradio(preview)
    assert again != served and open(again, "rb").read() == b"\xff\xd8 another preview"
    assert open(served, "rb").read() == b"\xff\xd8 a preview"  # a page that still shows the old one keeps it


def test_without_hard_links_the_file_is_copied_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    original = tmp_path / "originals" / "photo.jpg"
    original.parent.mkdir()
    original.write_bytes(os.urandom(300_000))

    def no_links(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    served = hand_to_gradio(original)
    assert not os.path.samefile(served, original) and open(served, "rb").read() == original.read_bytes()
    assert [name for name in os.listdir(os.path.dirname(served))] == ["photo.jpg"]  # no temp file left behind
