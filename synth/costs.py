"""Token prices (USD per million tokens) for cost estimates; override with --price-in/--price-out."""

from __future__ import annotations

# Public list prices, standard tier, as of 2025; batch APIs and self-hosted servers cost less or nothing.
PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
}


def price_for(model: str) -> tuple[float, float] | None:
    """(input, output) price for a known hosted model, longest name prefix first; None if unknown."""
    name = model.rsplit("/", 1)[-1].lower()
    for prefix in sorted(PRICES, key=len, reverse=True):
        if name.startswith(prefix):
            return PRICES[prefix]
    return None


def cost(prompt_tokens: int, completion_tokens: int, prices: tuple[float, float] | None) -> float | None:
    if prices is None:
        return None
    return (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1e6
