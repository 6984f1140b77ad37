"""mmE5's synthetic-data pipeline: configure -> describe -> synthesise -> self-evaluate -> revise.

``python -m synth generate|stats|export`` is the entry point; the pieces are importable:
``Configurator`` (stage 1), ``generate_one`` (stages 2-4 for one sample) and ``generate``
(the resumable loop).
"""
from .configure import Configurator, ImageRef, SampleConfig
from .generate import generate_one
from .run import Summary, dry_run, generate

__all__ = ["Configurator", "ImageRef", "SampleConfig", "Summary", "dry_run", "generate", "generate_one"]
