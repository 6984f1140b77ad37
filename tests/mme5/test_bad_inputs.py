"""Bad inputs fail with a ValueError that names the input and says what is wrong."""

import pytest
from PIL import Image


@pytest.fixture(params=["tiny_mllama", "tiny_siglip"])
def embedder(request):
    return request.getfixturevalue(request.param)


def test_missing_file(embedder, tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ValueError, match=r"nope\.jpg: file not found"):
        embedder.encode_images([missing])


def test_zero_byte_file(embedder, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.jpg: empty file"):
        embedder.encode_images([empty])


def test_text_file_named_jpg(embedder, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a picture")
    with pytest.raises(ValueError, match=r"notes\.jpg: not an image"):
        embedder.encode_image_queries([fake])


def test_truncated_jpeg(embedder, tmp_path):
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), "red").save(path, quality=90)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut\.jpg: damaged or truncated"):
        embedder.encode_images([path])


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text(embedder, text):
    with pytest.raises(ValueError, match=r"text #1 .* is empty"):
        embedder.encode_texts(["fine", text])


def test_composed_needs_matching_lengths(embedder):
    with pytest.raises(ValueError, match="one text per image"):
        embedder.encode_composed([Image.new("RGB", (8, 8))], ["a", "b"])


def test_single_string_instead_of_list(embedder):
    with pytest.raises(ValueError, match="wrap a single input in a list"):
        embedder.encode_texts("a dog")
