"""synth's public way to describe a generator and build its backend (used by `synth generate` and `trainer adapt`)."""

from __future__ import annotations

import pytest

from mme5.cli import UsageError
from synth.generator import GeneratorSettings, backend_from_settings


def test_the_model_defaults_to_synth_model_then_gpt_4o(monkeypatch):
    monkeypatch.delenv("SYNTH_MODEL", raising=False)  # this test is about $SYNTH_MODEL
    assert GeneratorSettings().model_name() == "gpt-4o"
    monkeypatch.setenv("SYNTH_MODEL", "gpt-4.1-mini")
    assert GeneratorSettings().model_name() == "gpt-4.1-mini"
    assert GeneratorSettings(model="my-vlm").model_name() == "my-vlm"
    with pytest.raises(UsageError, match="--backend local needs --model"):
        GeneratorSettings(backend="local").model_name()


def test_prices_given_free_for_a_local_model_else_the_built_in_list():
    assert GeneratorSettings(model="gpt-4o", price_in=1.0).prices() == (1.0, 0.0)
    assert GeneratorSettings(backend="local", model="./vlm").prices() == (0.0, 0.0)
    assert GeneratorSettings(model="openai/gpt-4o-mini-2024").prices() == (0.15, 0.60)
    assert GeneratorSettings(model="Qwen/Qwen2.5-VL-7B-Instruct").prices() is None


def test_the_openai_backend_gets_every_option(monkeypatch):
    from synth.openai_backend import OpenAIBackend

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # this test is about the variable's fallback
    backend = backend_from_settings(
        GeneratorSettings(model="m", json_mode=False, image_size=512, max_tokens=99, temperature=0.1, max_retries=2)
    )
    assert isinstance(backend, OpenAIBackend)
    assert (
        backend.model,
        backend.base_url,
        backend.json_mode,
        backend.image_max_side,
        backend.max_tokens,
        backend.temperature,
        backend.max_retries,
    ) == ("m", "http://127.0.0.1:9/v1", False, 512, 99, 0.1, 2)
    explicit = backend_from_settings(GeneratorSettings(model="m", base_url="http://127.0.0.1:8/v1"))
    assert explicit.base_url == "http://127.0.0.1:8/v1" and explicit.json_mode


def test_an_unknown_backend_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown synth backend 'vllm'; choose openai or local"):
        backend_from_settings(GeneratorSettings(backend="vllm", model="m"))


def test_adapt_describes_its_generator_with_its_own_temperature_option():
    from trainer.__main__ import build_parser
    from trainer.adapt import generator_settings

    args = build_parser().parse_args(
        [
            "adapt",
            "--index",
            "i",
            "--out",
            "o",
            "--model",
            "m",
            "--temperature",
            "0.02",
            "--temperature-gen",
            "0.3",
            "--no-json-mode",
            "--price-in",
            "2",
        ]
    )
    settings = generator_settings(args)
    assert settings.temperature == 0.3 and not settings.json_mode and settings.prices() == (2.0, 0.0)
