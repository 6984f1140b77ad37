"""What a run folder holds: counts per task, combination and language, failures, cost."""
from __future__ import annotations

from collections import Counter

from .costs import cost
from .output import RunFolder


def run_stats(folder: RunFolder) -> dict:
    manifest = folder.manifest()
    samples = folder.samples()
    accepted = {row["sample_id"] for row in samples}
    latest_failure: dict[str, dict] = {}
    for row in folder.failures():
        if row["sample_id"] not in accepted:
            latest_failure[row["sample_id"]] = row  # a retried sample's last failure is what counts
    failures = list(latest_failure.values())
    tokens_in = sum(row.get("usage", {}).get("prompt_tokens", 0) for row in samples + failures)
    tokens_out = sum(row.get("usage", {}).get("completion_tokens", 0) for row in samples + failures)
    prices = manifest.get("prices")
    attempted = len(samples) + len(failures)
    return {
        "out": str(folder.path),
        "generator": manifest.get("model"),
        "accepted": len(samples),
        "failed": len(failures),
        "acceptance_rate": round(len(samples) / attempted, 4) if attempted else None,
        "by_task": dict(Counter(row["task"] for row in samples).most_common()),
        "by_modality": dict(Counter(row["modality"] for row in samples).most_common()),
        "by_task_modality": dict(Counter(f"{row['task']} {row['modality']}" for row in samples).most_common()),
        "by_language": dict(Counter(row["language"] for row in samples).most_common()),
        "failure_reasons": dict(Counter(row["reason"] for row in failures).most_common()),
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "cost_usd": cost(tokens_in, tokens_out, tuple(prices) if prices else None),
        "tokens_per_accepted_sample": round((tokens_in + tokens_out) / len(samples)) if samples else None,
    }


def _table(title: str, counts: dict, total: int) -> list[str]:
    lines = [f"{title}:"]
    for name, count in counts.items():
        share = f"{count / total:6.1%}" if total else ""
        lines.append(f"  {name:<24} {count:>8} {share}")
    return lines


def format_stats(stats: dict) -> str:
    rate = stats["acceptance_rate"]
    lines = [
        f"{stats['out']}: {stats['accepted']} accepted, {stats['failed']} failed"
        + (f" (acceptance {rate:.1%})" if rate is not None else ""),
        f"generator: {stats['generator']}; tokens: {stats['prompt_tokens']:,} in, {stats['completion_tokens']:,} out"
        + (f"; cost ${stats['cost_usd']:.4f}" if stats["cost_usd"] is not None else "; cost unknown (no prices)"),
    ]
    total = stats["accepted"]
    lines += _table("by task", stats["by_task"], total)
    lines += _table("by task and combination", stats["by_task_modality"], total)
    lines += _table("by language", stats["by_language"], total)
    lines += _table("failure reasons", stats["failure_reasons"], stats["failed"])
    return "\n".join(lines)
