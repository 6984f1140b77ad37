"""The report of a ``trainer adapt`` run: PNG charts and report.md / report.json in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mme5.atomic import write_atomic

from .heldout import table


def charts(run: Path, before: dict, after: dict, losses: list[float]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = {}

    def bars(axis, key, title):
        names = list(before[key])
        x = np.arange(len(names))
        axis.bar(x - 0.2, [before[key][n]["recall@10"] for n in names], 0.4, label="before", color="#9aa5b1")
        axis.bar(x + 0.2, [after[key][n]["recall@10"] for n in names], 0.4, label="after", color="#2f80ed")
        axis.set_xticks(x, names)
        axis.set_ylim(0, 110)
        axis.set_ylabel("held-out recall@10 (%)")
        axis.set_title(title)
        axis.legend(loc="upper left", fontsize="small")

    def loss(axis):
        axis.plot(np.arange(1, len(losses) + 1), losses, color="#eb5757")
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.set_title("training loss")

    for name, draw in (
        ("recall10_by_language.png", lambda a: bars(a, "by_language", "recall@10 per language")),
        ("recall10_by_task.png", lambda a: bars(a, "by_task", "recall@10 per search mode")),
        ("training_loss.png", loss),
    ):
        figure, axis = plt.subplots(figsize=(5, 3.4), dpi=110)
        draw(axis)
        figure.tight_layout()
        figure.savefig(run / name)
        plt.close(figure)
        made[name] = str(run / name)
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=110)
    bars(axes[0], "by_language", "recall@10 per language")
    bars(axes[1], "by_task", "recall@10 per search mode")
    loss(axes[2])
    figure.tight_layout()
    figure.savefig(run / "report.png")
    plt.close(figure)
    made["report.png"] = str(run / "report.png")
    return made


def _text_pairs_sentence(found: dict | None) -> str:
    if not found or found.get("off"):
        return " Text pairs: off (--text-pairs turns them on)." if found else ""
    by_source = ", ".join(f"{n} from {source}" for source, n in found["by_source"].items() if n)
    return f" Text pairs (OCR, keywords, descriptions → photo): {found['pairs']}" + (
        f" ({by_source})." if by_source else "."
    )


def write_report(run: Path, report: dict) -> None:
    before, after = report["before"], report["after"]
    delta = after["overall"]["recall@10"] - before["overall"]["recall@10"]
    lines = [
        f"# Adapting {report['model']} to {report['index']}",
        "",
        f"Held-out recall@10 over the whole library ({before['library']} photos): "
        f"**{before['overall']['recall@10']:.1f} → {after['overall']['recall@10']:.1f}** ({delta:+.1f}); "
        f"MRR {before['overall']['mrr']:.3f} → {after['overall']['mrr']:.3f}.",
        "",
        f"Split: {report['split']['heldout']} held-out photos (queries only), {report['split']['train']} training "
        f"photos. Synthetic data: {report['synth']['heldout']['accepted']} held-out queries, "
        f"{report['synth']['train']['accepted']} training samples"
        + (f", ${report['synth']['cost_usd']:.4f}" if report["synth"].get("cost_usd") is not None else "")
        + "."
        + _text_pairs_sentence(report.get("text_pairs")),
        f"Training: {report['training']['steps']} steps, loss {report['training']['first_loss']:.3f} → "
        f"{report['training']['last_loss']:.3f}.",
        "",
        f"**Applied:** {'yes' if report['applied']['applied'] else 'no'} — {report['applied']['reason']}",
        "",
        "![report](report.png)",
        "",
        "## Before",
        "",
        table(before, "before"),
        "",
        "## After",
        "",
        table(after, "after"),
        "",
    ]
    guard = report.get("guard")
    if guard:
        summary = "; ".join(
            f"{name} {v['before']:.1f} → {v['after']:.1f} ({v['change']:+.1f})" for name, v in guard["scores"].items()
        )
        verdict = (
            f"**dropped** by more than {guard['max_drop']:g} points: {', '.join(guard['dropped'])}"
            if guard["dropped"]
            else f"no score fell by more than {guard['max_drop']:g} points"
        )
        lines[4:4] = [f"General-domain guard: {summary}; {verdict}.", ""]
        lines += ["## General-domain guard", "", "| benchmark | before | after | change | |", "|---|---|---|---|---|"]
        lines += [
            f"| {name} | {v['before']:.1f} | {v['after']:.1f} | {v['change']:+.1f} | "
            f"{'dropped' if name in guard['dropped'] else 'ok'} |"
            for name, v in guard["scores"].items()
        ]
        lines.append("")
    write_atomic(run / "report.md", "\n".join(lines))
    write_atomic(run / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
