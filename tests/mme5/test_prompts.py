"""Each prompt reaches the model as exactly the token ids of the string mmE5 was trained on."""

import pytest

from mme5 import prompts, registry

EXPECTED = {
    "image_document": ("<|image|><|begin_of_text|>Represent the given image.\n", True, None, None),
    "text": (
        "<|begin_of_text|>Find me an everyday image that matches the given caption: un perro\n",
        False,
        "un perro",
        prompts.TEXT_TO_IMAGE_INSTRUCTION,
    ),
    "image_query": (
        "<|image|><|begin_of_text|>Find a day-to-day image that looks similar to the provided image.\n",
        True,
        None,
        None,
    ),
    "composed": (
        "<|image|><|begin_of_text|>Given an image, find a similar everyday image with the described changes: "
        "but at night\n",
        True,
        "but at night",
        None,
    ),
    "image_instruction": ("<|image|><|begin_of_text|>What is in the image?\n", True, None, "What is in the image?"),
}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_mllama_token_ids_match_trained_strings(tiny_mllama, task):
    from PIL import Image

    expected_string, has_image, text, instruction = EXPECTED[task]
    formatted = registry.build_prompt("mllama", task, text=text, instruction=instruction)
    processor = tiny_mllama.backbone.processor
    images = [[Image.new("RGB", (20, 20), "red")]] if has_image else None
    ids = processor(text=[formatted], images=images, return_tensors="pt")["input_ids"][0].tolist()
    assert ids == processor.tokenizer(expected_string, add_special_tokens=False)["input_ids"]
    bos = processor.tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
    assert ids.count(bos) == 1
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image|>")
    assert image_id == tiny_mllama.backbone.model.config.text_config.vocab_size
    assert (ids[0] == image_id) == has_image


def test_plain_text_document_is_the_bare_text():
    assert registry.build_prompt("mllama", "text", text="A cat and a dog") == "A cat and a dog"
    assert (
        prompts.text_query("a dog", "Retrieve an image of this caption.")
        == "Retrieve an image of this caption. a dog\n"
    )


def test_mmeb_placeholder_rewrite_follows_reference_collator():
    assert prompts.from_mmeb("<|image_1|>\nRepresent the given image.", True) == (
        "<|image|><|begin_of_text|>Represent the given image."
    )
    assert prompts.from_mmeb("Find an image of a dog", False) == "Find an image of a dog"
    assert prompts.strip_image_tokens("<|image_1|>\nRepresent the given image.\n") == "Represent the given image."


def test_dual_encoders_get_bare_captions():
    assert registry.build_prompt("dual", "text", text="a dog", instruction="ignored") == "a dog"
    assert registry.build_prompt("dual", "image_document") is None
    assert registry.build_prompt("dual", "composed", text="at night") == "at night"
    with pytest.raises(ValueError):
        registry.build_prompt("nope", "text", text="x")


@pytest.mark.parametrize(
    ("task", "missing"), [("text", "text"), ("composed", "text"), ("image_instruction", "instruction")]
)
def test_mllama_prompt_without_its_text_is_an_error_not_the_word_none(task, missing):
    # Before: text and composed formatted None into the prompt ("...changes: None"), image_instruction hit None.strip().
    with pytest.raises(prompts.InputError, match=f"needs a {missing}"):
        prompts.mllama_prompt(task)
