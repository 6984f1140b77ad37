"""Parsing the ``name=weight,...`` lists of ``--languages`` and ``--tasks``."""

from __future__ import annotations

from .errors import SpecError


def parse_weight(value: str, name: str, what: str) -> float:
    """One ``name=value`` weight of a ``--languages``/``--tasks`` list; a bare name weighs 1."""
    try:
        weight = float(value) if value else 1.0
    except ValueError:
        raise SpecError(f"{what} weight for {name!r} is not a number: {value!r}") from None
    if weight < 0:
        raise SpecError(f"{what} weight for {name!r} is negative: {weight}")
    return weight


def normalise(weights: dict, spec: str, what: str) -> dict:
    total = sum(weights.values())
    if total <= 0:
        raise SpecError(f"{what} weights sum to zero: {spec!r}")
    return {key: weight / total for key, weight in weights.items()}
