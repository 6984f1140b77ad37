"""The encode_* contract on both backbones: shape, dtype, norm, order, batched == single."""

import numpy as np
import pytest
from PIL import Image

TEXTS = [
    "a dog",
    "un círculo rojo sobre un fondo blanco, de noche, con mucha lluvia y luces",
    "кот",
    "赤い丸",
    "x " * 40,
]


def shapes():
    """Images whose Mllama tile counts differ (1, 2, 3 and 4 tiles on the tiny 28-px tiles)."""
    colours = ["red", "blue", "green", "white", "black"]
    sizes = [(20, 20), (50, 25), (20, 75), (50, 50), (100, 20)]
    images = []
    for (width, height), colour in zip(sizes, colours):
        image = Image.new("RGB", (width, height), colour)
        image.paste("yellow", (0, 0, width // 3, height // 3))
        images.append(image)
    return images


@pytest.fixture(params=["tiny_mllama", "tiny_siglip"])
def embedder(request):
    return request.getfixturevalue(request.param)


def assert_unit_rows(vectors, count, dim):
    assert vectors.dtype == np.float32
    assert vectors.shape == (count, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_tile_counts_in_fixture_images_differ(tiny_mllama):
    tiles = {tiny_mllama.backbone.tiles_for(image.size) for image in shapes()}
    assert len(tiles) >= 3


def test_images_batched_equal_single(embedder):
    images = shapes()
    batched = embedder.encode_images(images, batch_size=len(images))
    single = np.concatenate([embedder.encode_images([image], batch_size=1) for image in images])
    assert_unit_rows(batched, len(images), embedder.dim)
    assert np.abs(batched - single).max() <= 1e-5


def test_texts_batched_equal_single(embedder):
    batched = embedder.encode_text_queries(TEXTS, batch_size=3)
    single = np.concatenate([embedder.encode_text_queries([text]) for text in TEXTS])
    assert_unit_rows(batched, len(TEXTS), embedder.dim)
    assert np.abs(batched - single).max() <= 1e-5


def test_composed_batched_equal_single(embedder):
    images, texts = shapes()[:4], TEXTS[:4]
    batched = embedder.encode_composed(images, texts, batch_size=4)
    single = np.concatenate([embedder.encode_composed([i], [t]) for i, t in zip(images, texts)])
    assert_unit_rows(batched, 4, embedder.dim)
    assert np.abs(batched - single).max() <= 1e-5


def test_rows_follow_input_order_not_batch_order(embedder):
    images = shapes()
    forward = embedder.encode_images(images, batch_size=2)
    backward = embedder.encode_images(images[::-1], batch_size=2)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)


def test_query_kinds_give_different_vectors(tiny_mllama):
    image = shapes()[0]
    document = tiny_mllama.encode_images([image])
    query = tiny_mllama.encode_image_queries([image])
    composed = tiny_mllama.encode_composed([image], ["but at night"])
    assert not np.allclose(document, query) and not np.allclose(query, composed)
    plain = tiny_mllama.encode_texts(["a dog"])
    instructed = tiny_mllama.encode_texts(
        ["a dog"], instruction="Find me an everyday image that matches the given caption:"
    )
    np.testing.assert_allclose(instructed, tiny_mllama.encode_text_queries(["a dog"]), atol=1e-6)
    assert not np.allclose(plain, instructed)


def test_images_change_the_vector(tiny_mllama):
    """Tiny models open the tanh gates; with closed gates every image would embed identically."""
    vectors = tiny_mllama.encode_images(shapes()[:2])
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3


def test_paths_and_pil_images_agree(embedder, tmp_path):
    image = shapes()[1]
    path = tmp_path / "photo.png"
    image.save(path)
    np.testing.assert_allclose(embedder.encode_images([str(path)]), embedder.encode_images([image]), atol=1e-6)


def test_empty_input_list_gives_empty_array(embedder):
    assert embedder.encode_texts([]).shape == (0, embedder.dim)


def test_progress_bar_goes_to_stderr(embedder, capsys):
    embedder.encode_texts(TEXTS, show_progress_bar=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "input" in captured.err


def test_long_texts_truncated_like_training_with_one_warning(tiny_mllama):
    base = "palabra " * 400
    with pytest.warns(UserWarning, match="truncated") as record:
        vectors = tiny_mllama.encode_texts([base + "gato", base + "perro", "short"], batch_size=1)
    assert len([w for w in record if "truncated" in str(w.message)]) == 1
    assert "2 text input(s)" in str(record[0].message)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)  # the differing tail was cut at 256 tokens


def test_siglip_pads_to_max_length_64(tiny_siglip):
    batch = tiny_siglip.backbone.collate([__import__("mme5").EmbedInput(text="a dog")])
    assert batch.tensors["input_ids"].shape == (1, 64)
    assert "attention_mask" not in batch.tensors


def test_threaded_preprocessing_path_gives_same_vectors(tiny_mllama, monkeypatch):
    """On a GPU batches are prepared ahead in threads; the result must not depend on it."""
    images = shapes()
    inline = tiny_mllama.encode_images(images, batch_size=2)
    monkeypatch.setattr(type(tiny_mllama), "preprocess_workers", property(lambda self: 2))
    threaded = tiny_mllama.encode_images(images, batch_size=2)
    np.testing.assert_array_equal(inline, threaded)


def test_submitted_calls_return_the_same_vectors_in_their_own_futures(tiny_mllama, tmp_path):
    images = shapes()
    first = tiny_mllama.submit("encode_images", images[:3], batch_size=2)
    second = tiny_mllama.submit("encode_images", images[3:], batch_size=2)
    np.testing.assert_allclose(
        np.concatenate([first.result(), second.result()]), tiny_mllama.encode_images(images, batch_size=2), atol=1e-6
    )
    broken = tiny_mllama.submit("encode_images", [tmp_path / "missing.jpg"])
    with pytest.raises(ValueError, match="missing.jpg"):
        broken.result()
    with pytest.raises(ValueError, match="encode"):
        tiny_mllama.submit("backbone")


def test_image_instruction_queries_follow_the_instruction(tiny_mllama):
    images = shapes()[:2]
    question = tiny_mllama.encode_image_instructions(images, "What colour is the corner?")
    other = tiny_mllama.encode_image_instructions(images, "How many shapes are there?")
    assert_unit_rows(question, 2, tiny_mllama.dim)
    assert np.abs(question - other).max() > 1e-3
    assert np.abs(question - tiny_mllama.encode_images(images)).max() > 1e-3
