"""Training examples in the mmE5 schema, from datasets dirs, JSONL files or hub datasets.

Rows carry ``qry, qry_image_path, pos_text, pos_image_path, neg_text, neg_image_path``
(the layout of ``intfloat/mmE5-synthetic`` and ``intfloat/mmE5-MMEB-hardneg``, and of
``synth`` output).  Texts stay raw, MMEB ``<|image_1|>`` placeholders included: the
backbone-specific rewrite happens once, in :mod:`mme5.prompts`, at training time.
Bad rows are skipped and counted in ``dataset.skipped`` instead of stopping a run.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from torch.utils.data import Dataset

from .errors import TrainerError

logger = logging.getLogger(__name__)

COLUMNS = ("qry", "qry_image_path", "pos_text", "pos_image_path", "neg_text", "neg_image_path")


class DataError(TrainerError, ValueError):
    """A data source cannot be read at all (as opposed to a bad row, which is skipped)."""


# The paper's labeled mix (scripts/train/train.sh of haon-chen/mmE5): the first 50,000 rows
# (--num_sample_per_subset) of each of these 24 intfloat/mmE5-MMEB-hardneg subsets ...
MME5_HARDNEG = "intfloat/mmE5-MMEB-hardneg"
MME5_HARDNEG_SUBSETS = (
    "TAT-DQA",
    "ArxivQA",
    "InfoSeek_it2t",
    "InfoSeek_it2it",
    "ImageNet_1K",
    "N24News",
    "HatefulMemes",
    "SUN397",
    "VOC2007",
    "InfographicsVQA",
    "ChartQA",
    "A-OKVQA",
    "DocVQA",
    "OK-VQA",
    "Visual7W",
    "VisDial",
    "CIRR",
    "NIGHTS",
    "WebQA",
    "VisualNews_i2t",
    "VisualNews_t2i",
    "MSCOCO_i2t",
    "MSCOCO_t2i",
    "MSCOCO",
)
MME5_ROWS_PER_SUBSET = 50_000
# ... plus every row of the three intfloat/mmE5-synthetic configs (the reference's train[:-1] drops
# each config's last row, a side effect of num_sample=-1; we keep it).
MME5_SYNTHETIC = "intfloat/mmE5-synthetic"
MME5_SYNTHETIC_SUBSETS = ("Classification", "Retrieval", "VQA")
RECIPES = {
    "mme5": [f"{MME5_HARDNEG}:{name}@{MME5_ROWS_PER_SUBSET}" for name in MME5_HARDNEG_SUBSETS]
    + [f"{MME5_SYNTHETIC}:{name}" for name in MME5_SYNTHETIC_SUBSETS],
}


def expand_recipe(recipe: str | None, sources: list[str] | None = None) -> list[str]:
    """The sources of a named recipe (``--recipe``) followed by the ones given (``--data``)."""
    sources = list(sources or [])
    if recipe is None:
        return sources
    if recipe not in RECIPES:
        raise DataError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    return RECIPES[recipe] + sources


def split_cap(source: str) -> tuple[str, int | None]:
    """``"SOURCE@ROWS"`` -> (SOURCE, ROWS): read only the first ROWS rows; no ``@digits`` suffix -> no cap."""
    name, at, rows = str(source).rpartition("@")
    if not at or not rows.strip().lstrip("-").isdigit():
        return str(source), None
    cap = int(rows)
    if cap < 1:
        raise DataError(f"{source}: row cap must be at least 1 (SOURCE@ROWS, e.g. {name}@50000)")
    return name, cap


@dataclass
class Example:
    """One query, its positive document and up to ``negative_ratio`` hard negatives."""

    qry: str
    qry_image_path: str | None
    pos_text: str
    pos_image_path: str | None
    neg_texts: list[str] = field(default_factory=list)
    neg_image_paths: list[str | None] = field(default_factory=list)


class ExampleDataset(Dataset):
    """A list of :class:`Example` plus ``skipped``: why and how many rows were dropped."""

    def __init__(self, examples: list[Example], skipped: Counter):
        self.examples = examples
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


def load_examples(sources: list[str], image_dir: str | None, negative_ratio: int = 3) -> ExampleDataset:
    """Read every source into one dataset of :class:`Example`.

    Each source is a ``datasets`` folder (``save_to_disk``), a ``.jsonl`` or ``.parquet``
    file, a folder of parquet files (a hub download), or a hub dataset name (``name`` or
    ``name:config``, split ``train``); ``SOURCE@ROWS`` reads only its first ROWS rows (the
    reference's per-subset cap; skipped rows count towards it).  Image paths are
    resolved against ``image_dir``.  Negatives are cut to ``negative_ratio`` and a short
    list is padded by repeating its last entry, as in the mmE5 reference.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise DataError("no training data given: pass at least one --data source")
    if negative_ratio < 0:
        raise DataError(f"negative_ratio must be 0 or more, got {negative_ratio}")
    image_root = Path(image_dir).expanduser() if image_dir else None
    if image_root is not None and not image_root.is_dir():
        raise DataError(f"{image_root}: image folder not found (--image-dir)")
    examples: list[Example] = []
    skipped: Counter = Counter()
    for source in sources:
        name, cap = split_cap(str(source))
        for row in itertools.islice(_rows(name), cap):
            example, reason = _example(row, image_root, negative_ratio)
            if example is None:
                skipped[reason] += 1
            else:
                examples.append(example)
    if skipped:
        detail = ", ".join(f"{count} {reason}" for reason, count in skipped.most_common())
        logger.warning(f"trainer: skipped {sum(skipped.values())} bad row(s): {detail}")
    return ExampleDataset(examples, skipped)


# -- reading sources ---------------------------------------------------------------------
def _rows(source: str) -> Iterator[dict]:
    ref, config = _source_ref(source)
    path = ref.path if ref.is_local else None
    if path is not None and path.is_file():
        if path.suffix == ".parquet":
            yield from _dataset_rows(_load_parquet([path]), str(path))
        elif path.suffix in (".jsonl", ".json"):
            yield from _jsonl_rows(path)
        else:
            raise DataError(f"{path}: expected a .jsonl or .parquet file in the mmE5 schema, or a datasets folder")
    elif path is not None and path.is_dir():
        parquet = sorted(path.rglob("*.parquet"))
        if parquet and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
            yield from _dataset_rows(_load_parquet(parquet), str(path))  # a hub download (hf download ...)
        else:
            yield from _dataset_rows(_load_from_disk(path), str(path))
    elif ref.is_local or source.endswith(".jsonl"):
        raise DataError(f"{source}: data file or folder not found")
    else:
        yield from _dataset_rows(_load_hub(f"{ref.canonical}:{config}" if config else ref.canonical), source)


def _source_ref(source: str):
    """(ModelRef, hub config) of a data source: a local file/folder, or a Hub dataset ``ORG/NAME[:CONFIG]``."""
    from mme5.model_ref import ModelRef, ModelRefError

    try:
        return ModelRef.parse(source), ""
    except ModelRefError as error:
        head, colon, config = source.rpartition(":")
        try:
            if colon and config and ModelRef.parse(head).is_hub:
                return ModelRef.parse(head), config
        except ModelRefError:
            pass
        raise DataError(f"{source}: data file or folder not found ({error})") from None


def _jsonl_rows(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield {"__error__": f"unparsable JSON line ({path.name}:{line_number}: {error.msg})"}
                continue
            yield row if isinstance(row, dict) else {"__error__": "JSON line is not an object"}


def _load_from_disk(path: Path):
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001 - datasets raises several types for a bad folder
        raise DataError(f"{path}: not a datasets folder written by save_to_disk ({error})") from error
    return loaded


def _load_parquet(files: list[Path]):
    import datasets

    try:
        return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    except Exception as error:  # noqa: BLE001
        raise DataError(
            f"{files[0].parent}: could not read parquet files ({str(error).splitlines()[0][:200]})"
        ) from error


def _load_hub(name: str):
    import datasets

    repo, _, config = name.partition(":")
    try:
        return datasets.load_dataset(repo, config or None, split="train")
    except Exception as error:  # noqa: BLE001
        raise DataError(
            f"{name}: could not load hub dataset ({str(error).splitlines()[0][:200]}). Offline? Download it elsewhere "
            f"(`hf download {repo} --repo-type dataset --local-dir DIR`) and pass DIR (its parquet files are read)."
        ) from error


def _dataset_rows(loaded, source: str) -> Iterable[dict]:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataError(f"{source}: DatasetDict without a 'train' split (has {', '.join(loaded)})")
        loaded = loaded["train"]
    missing = [column for column in ("qry", "pos_text") if column not in loaded.column_names]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; expected the mmE5 schema {', '.join(COLUMNS)}"
        )
    return iter(loaded)


# -- one row -------------------------------------------------------------------------------
def parse_list(value, what: str) -> list:
    """A list column, stored either as a list or as a string holding a Python/JSON list literal."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if not text.startswith("["):
            return [value]
        try:
            parsed = ast.literal_eval(text)  # literals only: never eval() data
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{what} is not a list literal") from error
        if not isinstance(parsed, (list, tuple)):
            raise ValueError(f"{what} is not a list literal")
        return list(parsed)
    raise ValueError(f"{what} has unsupported type {type(value).__name__}")


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _has_content(text: str) -> bool:
    from mme5.prompts import strip_image_tokens

    return bool(strip_image_tokens(text))


def _image(value, image_root: Path | None) -> tuple[str | None, bool]:
    """(absolute path or None, ok). An empty value means "no image"; a named file must exist."""
    if not isinstance(value, str) or not value.strip():
        return None, True
    path = Path(value).expanduser()
    if not path.is_absolute() and image_root is not None:
        path = image_root / path
    if not path.is_file() or path.stat().st_size == 0:
        return str(path), False
    return str(path), True


def _example(row: dict, image_root: Path | None, negative_ratio: int) -> tuple[Example | None, str]:
    if "__error__" in row:
        return None, row["__error__"]
    qry, pos = _text(row.get("qry")), _text(row.get("pos_text"))
    qry_image, ok = _image(row.get("qry_image_path"), image_root)
    if not ok:
        return None, "missing query image"
    pos_image, ok = _image(row.get("pos_image_path"), image_root)
    if not ok:
        return None, "missing positive image"
    if not _has_content(qry) and qry_image is None:
        return None, "empty query"
    if not _has_content(pos) and pos_image is None:
        return None, "empty positive"
    try:
        neg_texts = [_text(text) for text in parse_list(row.get("neg_text"), "neg_text")]
        neg_images = parse_list(row.get("neg_image_path"), "neg_image_path")
    except ValueError:
        return None, "unparsable negative list"
    negatives = _negatives(neg_texts, neg_images, image_root, pos)
    if negatives is None:
        return None, "missing negative image"
    negatives = negatives[:negative_ratio]
    if negatives and len(negatives) < negative_ratio:
        negatives += [negatives[-1]] * (negative_ratio - len(negatives))
    return Example(
        qry=qry,
        qry_image_path=qry_image,
        pos_text=pos,
        pos_image_path=pos_image,
        neg_texts=[text for text, _ in negatives],
        neg_image_paths=[image for _, image in negatives],
    ), ""


def _negatives(texts, images, image_root, pos_text) -> list[tuple[str, str | None]] | None:
    """Pair negative texts with images; None if a named negative image is missing.

    An empty negative text next to an image is an image document; an empty one with no
    image is replaced by another non-empty negative text, as in the reference loader.
    """
    count = max(len(texts), len(images))
    texts = list(texts) + [""] * (count - len(texts))
    images = list(images) + [None] * (count - len(images))
    non_empty = [text for text in texts if _has_content(text)]
    pairs = []
    for text, image in zip(texts, images):
        path, ok = _image(image, image_root)
        if not ok:
            return None
        if not _has_content(text) and path is None:
            if not non_empty:
                continue
            text = non_empty[0]
        pairs.append((text, path))
    return pairs


def app_query(text: str, modality: str) -> str:
    """A photo search (``modality`` such as ``T->I``) spelled as the app's prompt for its kind, in MMEB's spelling
    (image marker first)."""
    from mme5 import prompts
    from synth.tasks import Combo

    kind = Combo(modality).query_kind
    qry = prompts.mllama_prompt(kind.task, text=text, instruction=kind.instruction)
    strip = prompts.IMAGE_TOKEN + prompts.BOS
    return prompts.MMEB_IMAGE_PLACEHOLDER + qry.removeprefix(strip) if kind.needs_image else qry
