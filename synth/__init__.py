"""mmE5's synthetic-data pipeline: configure -> describe -> synthesise -> self-evaluate -> revise.

``python -m synth generate|stats|export`` is the entry point; the pieces are importable:
``Configurator`` (stage 1), ``generate_one`` (stages 2-4 for one sample) and ``generate``
(the resumable loop). Names are imported on first use (PEP 562), so ``python -m synth languages``
loads neither torch nor faiss.
"""

from importlib import import_module

_EXPORTS = {
    "Configurator": "configure",
    "ImageRef": "configure",
    "SampleConfig": "configure",
    "Summary": "run",
    "dry_run": "run",
    "generate": "run",  # the loop
    "generate_one": "sample",
}
__all__ = [
    "Configurator",
    "ImageRef",
    "SampleConfig",
    "Summary",
    "dry_run",
    "generate",
    "generate_one",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
