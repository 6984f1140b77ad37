"""MMEB Precision@1 and XTD text->image Recall@10 of an mme5 Embedder.

Each subset is a list of rows ``qry_text, qry_img_path, tgt_text[], tgt_img_path[]`` whose
candidate 0 is the answer (TIGER-Lab/MMEB-eval and Haon-Chen/XTD-10 layouts).  Every unique
(text, image) input of a subset is embedded once; a query is scored against its own
candidates by dot product of the L2-normalised vectors.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mme5 import registry

from .benchmarks import MME5_MMEB, MME5_XTD, MMEB_DATASETS, MMEB_IND, MMEB_META_TASKS, MMEB_OOD, XTD_LANGUAGES
from .data import parse_list
from .errors import TrainerError
from mme5.atomic import write_atomic
from .inputs import input_key, to_input

logger = logging.getLogger(__name__)


class EvalDataError(TrainerError, ValueError):
    """An eval subset is malformed or refers to images that are not there."""


@dataclass
class Row:
    query: tuple[str, str | None]
    candidates: list[tuple[str, str | None]]


# -- reading subsets ----------------------------------------------------------------------
def find_subsets(folder: str | Path) -> dict[str, Path]:
    """``<Subset>.jsonl`` files, ``datasets`` folders and hub-download subset folders in ``folder``, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalDataError(f"{folder}: eval folder not found")
    found = {}
    for item in sorted(folder.iterdir()):
        if item.suffix == ".jsonl" and item.is_file():
            found[item.stem] = item
        elif item.is_dir() and not item.name.startswith("."):
            found[item.name] = item
    if not found:
        raise EvalDataError(f"{folder}: no <Subset>.jsonl files, datasets folders or <Subset>/*.parquet folders in it")
    return found


def read_rows(source: Path, image_dir: Path) -> list[Row]:
    records = _jsonl(source) if source.is_file() else _dataset(source)
    rows, missing = [], []
    for number, record in enumerate(records, start=1):
        where = f"{source}: row {number}"
        try:
            texts = [str(t) for t in parse_list(record.get("tgt_text"), "tgt_text")]
            images = parse_list(record.get("tgt_img_path"), "tgt_img_path")
        except ValueError as error:
            raise EvalDataError(f"{where}: {error}") from error
        if not texts and not images:
            raise EvalDataError(f"{where}: no candidates (tgt_text and tgt_img_path are empty)")
        if images and texts and len(images) != len(texts):
            raise EvalDataError(f"{where}: {len(texts)} tgt_text but {len(images)} tgt_img_path entries")
        count = max(len(texts), len(images))
        texts = texts or [""] * count
        images = images or [""] * count
        query = (str(record.get("qry_text") or ""), _path(record.get("qry_img_path"), image_dir, missing))
        candidates = [(text, _path(image, image_dir, missing)) for text, image in zip(texts, images)]
        rows.append(Row(query, candidates))
    if missing:
        raise EvalDataError(
            f"{source}: {len(missing)} image(s) not found, e.g. {missing[0]}; is --image-dir {image_dir} the folder "
            "the subset's image paths are relative to?"
        )
    if not rows:
        raise EvalDataError(f"{source}: no rows")
    return rows


def _path(value, image_dir: Path, missing: list) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value) if Path(value).is_absolute() else image_dir / value
    if not path.is_file():
        missing.append(str(path))
    return str(path)


def _jsonl(path: Path) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise EvalDataError(f"{path}: line {number} is not JSON ({error.msg})") from error
    return records


def _dataset(path: Path):
    """A ``save_to_disk`` folder, or a subset folder of parquet files as ``hf download`` writes it
    (``MMEB-eval/ImageNet-1K/test-00000-of-00001.parquet``)."""
    parquet = sorted(path.rglob("*.parquet"))
    if parquet and not any((path / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")):
        tests = [f for f in parquet if "test" in (f.name.split("-")[0], f.parent.name)] or parquet  # split "test"
        import pyarrow.parquet

        rows = []
        for file in tests:
            try:
                rows += pyarrow.parquet.read_table(file).to_pylist()
            except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a bad file
                raise EvalDataError(
                    f"{file}: not a readable parquet file ({str(error).splitlines()[0][:200]})"
                ) from error
        return rows
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001
        raise EvalDataError(f"{path}: not a datasets folder written by save_to_disk ({error})") from error
    if isinstance(loaded, datasets.DatasetDict):
        loaded = loaded["test"] if "test" in loaded else next(iter(loaded.values()))
    return list(loaded)


# -- scoring ------------------------------------------------------------------------------
def score_subset(embedder, rows: list[Row], batch_size: int = 16, show_progress: bool = False) -> dict:
    """Precision@1 and Recall@10 (%) with candidate 0 as the answer; ties count for candidate 0."""
    family = embedder.family
    unique: dict[tuple, int] = {}
    items = []

    def index_of(text, image) -> int:
        item = to_input(family, text, image)
        key = input_key(item)
        if key not in unique:
            unique[key] = len(items)
            items.append(item)
        return unique[key]

    queries = [index_of(*row.query) for row in rows]
    candidates = [[index_of(*candidate) for candidate in row.candidates] for row in rows]
    vectors = embedder.encode(items, batch_size=batch_size, show_progress_bar=show_progress)
    hits1 = hits10 = 0
    for query, targets in zip(queries, candidates):
        scores = vectors[targets] @ vectors[query]
        hits1 += int(np.argmax(scores) == 0)
        hits10 += int(np.sum(scores > scores[0]) < 10)
    n = len(rows)
    return {
        "precision_at_1": 100.0 * hits1 / n,
        "recall_at_10": 100.0 * hits10 / n,
        "queries": n,
        "candidates": int(np.mean([len(t) for t in candidates])),
        "inputs_embedded": len(items),
    }


def _score_all(embedder, what, folder, image_dir, batch_size, show_progress) -> dict:
    """Read and check every subset first, so a bad one fails before hours of embedding."""
    subsets = {name: read_rows(source, Path(image_dir)) for name, source in find_subsets(folder).items()}
    scores = {}
    for name, rows in subsets.items():
        logger.info(f"trainer eval: {what} {name} ({len(rows)} queries)")
        scores[name] = score_subset(embedder, rows, batch_size, show_progress)
    return scores


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def evaluate_mmeb(embedder, folder, image_dir, batch_size=16, show_progress=False) -> dict:
    scores = _score_all(embedder, "MMEB", folder, image_dir, batch_size, show_progress)
    p1 = {name: result["precision_at_1"] for name, result in scores.items()}
    summary = {task: _mean(p1.get(name) for name in names) for task, names in MMEB_META_TASKS.items()}
    summary["IND"] = _mean(p1.get(name) for name in MMEB_IND)
    summary["OOD"] = _mean(p1.get(name) for name in MMEB_OOD)
    summary["Overall"] = _mean(p1.get(name) for name in MMEB_DATASETS)
    return {
        "datasets": scores,
        "summary": summary,
        "missing": [name for name in MMEB_DATASETS if name not in scores],
        "unknown": [name for name in scores if name not in MMEB_DATASETS],
    }


def evaluate_xtd(embedder, folder, image_dir, batch_size=16, show_progress=False) -> dict:
    scores = _score_all(embedder, "XTD", folder, image_dir, batch_size, show_progress)
    return {
        "languages": scores,
        "mean": _mean(scores[lang]["recall_at_10"] for lang in XTD_LANGUAGES if lang in scores),
        "missing": [lang for lang in XTD_LANGUAGES if lang not in scores],
    }


# -- report -------------------------------------------------------------------------------
def _cell(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(report: dict) -> str:
    """Tables of our scores, with the paper's mmE5 figures beside them for a full-size Mllama."""
    spec = registry.BACKBONES.get(report["family"])
    show_paper = spec is not None and spec.paper_dim == report["dim"]
    lines = [f"# Evaluation of {report['model']}" + (f" + {report['adapter']}" if report["adapter"] else ""), ""]
    if "mmeb" in report:
        mmeb = report["mmeb"]
        columns = ["Classification", "VQA", "Retrieval", "Grounding", "IND", "OOD", "Overall"]
        lines += [
            "## MMEB (Precision@1, %)",
            "",
            "| model | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
            "| ours | " + " | ".join(_cell(mmeb["summary"][c]) for c in columns) + " |",
        ]
        if show_paper:
            lines += [
                f"| {name} | " + " | ".join(_cell(row[c]) for c in columns) + " |" for name, row in MME5_MMEB.items()
            ]
        lines += ["", "| dataset | P@1 | queries | candidates |", "|---|---|---|---|"]
        lines += [
            f"| {name} | {r['precision_at_1']:.1f} | {r['queries']} | {r['candidates']} |"
            for name, r in mmeb["datasets"].items()
        ]
        if mmeb["missing"]:
            lines += [
                "",
                f"Not evaluated ({len(mmeb['missing'])} of 36): {', '.join(mmeb['missing'])}. "
                "Averages cover the datasets present, so they are comparable to the paper only with all 36.",
            ]
        lines.append("")
    if "xtd" in report:
        xtd = report["xtd"]
        columns = XTD_LANGUAGES + ["mean"]
        ours = {lang: xtd["languages"].get(lang, {}).get("recall_at_10") for lang in XTD_LANGUAGES}
        ours["mean"] = xtd["mean"]
        lines += [
            "## XTD text→image (Recall@10, %)",
            "",
            "| model | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
            "| ours | " + " | ".join(_cell(ours[c]) for c in columns) + " |",
        ]
        if show_paper:
            lines += [
                f"| {name} | " + " | ".join(_cell(row[c]) for c in columns) + " |" for name, row in MME5_XTD.items()
            ]
        lines.append("")
    return "\n".join(lines)


def evaluate(embedder, mmeb=None, xtd=None, image_dir=".", batch_size=16, show_progress=False) -> dict:
    if not mmeb and not xtd:
        raise EvalDataError("nothing to evaluate: give --mmeb DIR and/or --xtd DIR")
    report = {"model": embedder.model_id, "adapter": embedder.adapter, "family": embedder.family, "dim": embedder.dim}
    if mmeb:
        report["mmeb"] = evaluate_mmeb(embedder, mmeb, image_dir, batch_size, show_progress)
    if xtd:
        report["xtd"] = evaluate_xtd(embedder, xtd, image_dir, batch_size, show_progress)
    report["reference"] = {"mmeb": MME5_MMEB, "xtd": MME5_XTD}
    return report


def evaluate_cli(args) -> int:
    from mme5 import load_embedder
    from mme5.cli import UsageError

    if args.index or args.queries:
        return _evaluate_index_cli(args)
    if not args.model or not args.image_dir:
        raise EvalDataError("give --model and --image-dir (MMEB/XTD), or --index and --queries (held-out recall)")
    if not args.mmeb and not args.xtd:
        raise UsageError("nothing to evaluate: give --mmeb DIR and/or --xtd DIR")
    image_dir = Path(args.image_dir)
    if not image_dir.is_dir():
        raise EvalDataError(f"{image_dir}: image folder not found (--image-dir)")
    embedder = load_embedder(args.model, device=args.device, adapter=args.adapter)
    report = evaluate(embedder, args.mmeb, args.xtd, image_dir, args.batch_size, not args.no_progress)
    table = markdown(report)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps(report, indent=2, ensure_ascii=False))
        write_atomic(out.with_suffix(".md"), table)
        logger.info(f"trainer eval: wrote {out} and {out.with_suffix('.md')}")
    return 0


def _evaluate_index_cli(args) -> int:
    """``--index I --queries RUN/heldout``: how good search is on the user's own photos."""
    from .heldout import evaluate_index, table

    if not (args.index and args.queries):
        raise EvalDataError("held-out evaluation needs both --index I and --queries RUN/heldout")
    result = evaluate_index(args.index, args.queries, device=args.device, show_progress=not args.no_progress)
    text = f"# Held-out search quality of {args.index} ({result['library']} photos as candidates)\n\n" + table(
        result, "queries"
    )
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        out.with_suffix(".md").write_text(text + "\n")
    return 0
