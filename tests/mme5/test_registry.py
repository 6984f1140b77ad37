"""The backbone registry and the query-kind enum: one place that knows families and query kinds."""

import numpy as np
import pytest
from PIL import Image

from mme5 import registry
from mme5.registry import QueryKind


def test_query_kind_follows_the_given_inputs_and_ignores_blanks():
    assert QueryKind.of(text="a dog") is QueryKind.TEXT
    assert QueryKind.of(image="x.jpg") is QueryKind.IMAGE
    assert QueryKind.of(text="at night", image="x.jpg") is QueryKind.COMPOSED
    assert QueryKind.of(text="   ", image="x.jpg") is QueryKind.IMAGE
    assert QueryKind.of(text="a dog", image="  ") is QueryKind.TEXT
    with pytest.raises(ValueError, match="text, an image, or both"):
        QueryKind.of(text=" ", image=None)
    assert QueryKind.parse("composed") is QueryKind.COMPOSED
    with pytest.raises(ValueError, match="unknown query kind 'audio'.*text, image, composed"):
        QueryKind.parse("audio")


def test_every_family_entry_is_complete_and_consistent():
    seen_types = set()
    for family, spec in registry.BACKBONES.items():
        assert spec.family == family
        assert spec.backbone_type().family == family  # the class really belongs to this entry
        assert spec.transformers_class().__name__ == spec.model_class
        assert not seen_types & set(spec.model_types), "a model type must map to one family"
        seen_types |= set(spec.model_types)
        assert registry.TORCH in spec.runtimes and set(spec.runtimes) <= set(registry.RUNTIMES)
        assert spec.lora_targets
        for kind in QueryKind:
            formatted = registry.build_prompt(family, kind.task, text="a dog", instruction=kind.instruction)
            assert (formatted is None) or isinstance(formatted, str)
    assert set(registry.SUPPORTED_TYPES) == seen_types
    with pytest.raises(ValueError, match="unknown backbone family 'clip'"):
        registry.by_family("clip")
    assert registry.by_model_type("bert") is None


@pytest.fixture(params=["tiny_mllama", "tiny_siglip"])
def embedder(request):
    return request.getfixturevalue(request.param)


def test_encode_query_equals_the_named_wrappers(embedder):
    images = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (30, 40), "blue")]
    texts = ["a red square", "at night"]
    np.testing.assert_array_equal(
        embedder.encode_query(QueryKind.TEXT, texts=texts), embedder.encode_text_queries(texts)
    )
    np.testing.assert_array_equal(embedder.encode_query("image", images=images), embedder.encode_image_queries(images))
    np.testing.assert_array_equal(
        embedder.encode_query(QueryKind.COMPOSED, texts=texts, images=images), embedder.encode_composed(images, texts)
    )


def test_encode_query_refuses_inputs_that_do_not_fit_the_kind(tiny_siglip):
    image = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match="a text query needs texts"):
        tiny_siglip.encode_query(QueryKind.TEXT, images=[image])
    with pytest.raises(ValueError, match="an? image query takes no texts|a image query takes no texts"):
        tiny_siglip.encode_query(QueryKind.IMAGE, texts=["x"], images=[image])
    with pytest.raises(ValueError, match="one text per image"):
        tiny_siglip.encode_query(QueryKind.COMPOSED, texts=["x", "y"], images=[image])
    with pytest.raises(ValueError, match="must be a list"):
        tiny_siglip.encode_query(QueryKind.TEXT, texts="a dog")
