"""What a run folder holds: counts per task, combination and language, failures, cost."""

from __future__ import annotations

import json
from collections import Counter

from .costs import cost
from .output import RunFolder


def run_stats(folder: RunFolder) -> dict:
    manifest = folder.manifest()
    accepted: set[str] = set()
    by_task, by_modality, by_pair, by_language = Counter(), Counter(), Counter(), Counter()
    tokens_in = tokens_out = 0
    for row in folder.samples():  # streamed: a 500K-sample run does not have to fit in memory
        accepted.add(row["sample_id"])
        by_task[row["task"]] += 1
        by_modality[row["modality"]] += 1
        by_pair[f"{row['task']} {row['modality']}"] += 1
        by_language[row["language"]] += 1
        tokens_in += row.get("usage", {}).get("prompt_tokens", 0)
        tokens_out += row.get("usage", {}).get("completion_tokens", 0)
    latest_failure: dict[str, tuple[str, dict]] = {}
    for row in folder.failures():
        if row["sample_id"] not in accepted:  # a retried sample's last failure is what counts
            latest_failure[row["sample_id"]] = (row["reason"], row.get("usage", {}))
    for _, usage in latest_failure.values():
        tokens_in += usage.get("prompt_tokens", 0)
        tokens_out += usage.get("completion_tokens", 0)
    prices = manifest.get("prices")
    n_accepted, n_failed = len(accepted), len(latest_failure)
    attempted = n_accepted + n_failed
    return {
        "out": str(folder.path),
        "generator": manifest.get("model"),
        "accepted": n_accepted,
        "failed": n_failed,
        "acceptance_rate": round(n_accepted / attempted, 4) if attempted else None,
        "by_task": dict(by_task.most_common()),
        "by_modality": dict(by_modality.most_common()),
        "by_task_modality": dict(by_pair.most_common()),
        "by_language": dict(by_language.most_common()),
        "failure_reasons": dict(Counter(reason for reason, _ in latest_failure.values()).most_common()),
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "cost_usd": cost(tokens_in, tokens_out, tuple(prices) if prices else None),
        "tokens_per_accepted_sample": round((tokens_in + tokens_out) / n_accepted) if n_accepted else None,
        "structured_output": _last_summary(folder).get("structured_output"),
    }


def _last_summary(folder: RunFolder) -> dict:
    """The last generate run's summary.json (what the server's structured-output support settled on)."""
    path = folder.path / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


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
    structured = stats.get("structured_output")
    if structured:
        lines.append(f"structured output: {structured['mode']}" + "".join(f"; {s}" for s in structured["steps"]))
    total = stats["accepted"]
    lines += _table("by task", stats["by_task"], total)
    lines += _table("by task and combination", stats["by_task_modality"], total)
    lines += _table("by language", stats["by_language"], total)
    lines += _table("failure reasons", stats["failure_reasons"], stats["failed"])
    return "\n".join(lines)
