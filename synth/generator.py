"""Which generator a synth run calls, and at what price: the public way to build a backend.

``python -m synth generate`` and ``trainer adapt`` both describe their generator with one
``GeneratorSettings`` and get the backend from ``backend_from_settings``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mme5.cli import UsageError

DEFAULT_MODEL = "gpt-4o"  # the openai backend's model when neither --model nor $SYNTH_MODEL names one


@dataclass(frozen=True)
class GeneratorSettings:
    """A generator backend and its options; ``None`` means the documented default (often an environment variable)."""

    backend: str = "openai"  # "openai" (any OpenAI-compatible server) or "local" (a transformers model)
    model: str | None = None  # openai: $SYNTH_MODEL or gpt-4o; local: required (a folder or hub id)
    base_url: str | None = None  # openai: $OPENAI_BASE_URL or the OpenAI API
    api_key: str | None = None  # openai: $OPENAI_API_KEY
    timeout: float = 120.0  # seconds per request
    max_retries: int = 5  # on timeouts, 429 and 5xx
    json_mode: bool = True  # ask for structured output (json_schema, then json_object)
    image_size: int = 1024  # longer image side sent
    max_tokens: int = 2048  # answer length limit
    temperature: float = 0.7  # sampling temperature (openai backend)
    device: str | None = None  # local backend: cpu, cuda ...
    price_in: float | None = None  # USD per 1M input tokens (known hosted models: built in)
    price_out: float | None = None  # USD per 1M output tokens

    def model_name(self) -> str:
        """The generator model this run uses (the default filled in)."""
        if self.model:
            return self.model
        if self.backend == "local":
            raise UsageError("--backend local needs --model (a local folder or hub id of a vision-language model)")
        return os.environ.get("SYNTH_MODEL", DEFAULT_MODEL)

    def prices(self) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens: the given prices, free for a local model, else the built-in list."""
        from .costs import price_for

        if self.price_in is not None or self.price_out is not None:
            return (self.price_in or 0.0, self.price_out or 0.0)
        if self.backend == "local":
            return (0.0, 0.0)
        return price_for(self.model_name())


def backend_from_settings(settings: GeneratorSettings):
    """The backend object (``complete(messages) -> Completion``) the settings describe."""
    model = settings.model_name()
    if settings.backend == "local":
        from .local_backend import LocalBackend

        return LocalBackend(
            model, device=settings.device, max_new_tokens=settings.max_tokens, image_max_side=settings.image_size
        )
    if settings.backend != "openai":
        raise UsageError(f"unknown synth backend {settings.backend!r}; choose openai or local")
    from .openai_backend import OpenAIBackend

    return OpenAIBackend(
        model,
        base_url=settings.base_url or os.environ.get("OPENAI_BASE_URL"),
        api_key=settings.api_key or os.environ.get("OPENAI_API_KEY"),
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        json_mode=settings.json_mode,
        image_max_side=settings.image_size,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
    )
