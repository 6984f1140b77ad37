"""A local transformers vision-language model (``AutoModelForImageTextToText``) for offline runs.

Processors saved without a chat template (e.g. bare Llama-3.2-Vision checkpoints or the
tiny test model) get a minimal Llama-3.2-Vision-style template, so prompts keep the
model's header and image-token layout.
"""

from __future__ import annotations

import threading

import torch

from mme5.images import load_image

from .backend import Completion, FatalBackendError

LLAMA_VISION_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|image|>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


class LocalBackend:
    """Greedy generation on one device; calls are serialised (one model, one stream)."""

    def __init__(self, model: str, device: str | None = None, max_new_tokens: int = 2048, image_max_side: int = 1024):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model = model
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        try:
            self.processor = AutoProcessor.from_pretrained(model)
            self.network = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError) as error:
            raise FatalBackendError(f"cannot load local model {model!r}: {str(error).splitlines()[0]}") from error
        if not getattr(self.processor, "chat_template", None):
            self.processor.chat_template = LLAMA_VISION_TEMPLATE
        self.max_new_tokens = max_new_tokens
        self.image_max_side = image_max_side
        self._lock = threading.Lock()

    def _images(self, messages: list[dict]) -> list:
        images = []
        for message in messages:
            if isinstance(message["content"], str):
                continue
            for part in message["content"]:
                if part["type"] == "image":
                    image = load_image(part["path"], draft_size=self.image_max_side)
                    image.thumbnail((self.image_max_side, self.image_max_side))
                    images.append(image)
        return images

    def complete(self, messages: list[dict]) -> Completion:
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images = self._images(messages)
        inputs = self.processor(
            images=[images] if images else None, text=[prompt], add_special_tokens=False, return_tensors="pt"
        ).to(self.device)
        with self._lock, torch.inference_mode():
            output = self.network.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[0, prompt_length:]
        text = self.processor.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Completion(text=text, prompt_tokens=int(prompt_length), completion_tokens=int(new_tokens.numel()))
