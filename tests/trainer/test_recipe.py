"""Per-source row caps (SOURCE@ROWS) and the --recipe mme5 preset (the paper's data mix)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.data import DataError, RECIPES, expand_recipe, load_examples, split_cap

ROOT = Path(__file__).resolve().parents[2]
PAPER_FACTS_SUBSETS = {  # /work/shared/reference/mme5-paper-facts.md: 20 MMEB-train sets + 4 extra
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
    "TAT-DQA",
    "ArxivQA",
    "InfoSeek_it2t",
    "InfoSeek_it2it",
}


def write_rows(path: Path, count: int, bad: tuple[int, ...] = ()) -> Path:
    rows = [
        {
            "qry": f"query {i}",
            "qry_image_path": "",
            "pos_text": f"doc {i}" if i not in bad else "",
            "pos_image_path": "",
            "neg_text": "",
            "neg_image_path": "",
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_mme5_recipe_names_exactly_the_paper_mix():
    sources = expand_recipe("mme5")
    capped = [split_cap(source) for source in sources]
    hardneg = {name.split(":", 1)[1]: cap for name, cap in capped if name.startswith("intfloat/mmE5-MMEB-hardneg:")}
    synthetic = {name.split(":", 1)[1]: cap for name, cap in capped if name.startswith("intfloat/mmE5-synthetic:")}
    assert len(sources) == 27 and len(hardneg) == 24
    assert set(hardneg) == PAPER_FACTS_SUBSETS and set(hardneg.values()) == {50_000}
    assert synthetic == {"Classification": None, "Retrieval": None, "VQA": None}  # every synthetic row
    assert expand_recipe("mme5", ["mine.jsonl@10"])[-1] == "mine.jsonl@10"
    assert expand_recipe(None, ["a"]) == ["a"]
    with pytest.raises(DataError, match="unknown recipe 'e5'.*mme5"):
        expand_recipe("e5")
    assert set(RECIPES) == {"mme5"}


def test_cap_keeps_the_first_rows_of_each_source(tmp_path):
    first = write_rows(tmp_path / "first.jsonl", 10)
    second = write_rows(tmp_path / "second@home.jsonl", 5)  # an @ in a name is not a cap
    data = load_examples([f"{first}@3", str(second)], None, negative_ratio=0)
    assert [e.qry for e in data.examples] == ["query 0", "query 1", "query 2"] + [f"query {i}" for i in range(5)]
    # a bad row inside the cap is skipped and still counts towards it, as the reference slices train[:N] first
    bad = write_rows(tmp_path / "bad.jsonl", 10, bad=(1,))
    data = load_examples([f"{bad}@3"], None, negative_ratio=0)
    assert [e.qry for e in data.examples] == ["query 0", "query 2"] and data.skipped["empty positive"] == 1
    assert split_cap("name:config@50000") == ("name:config", 50000)
    with pytest.raises(DataError, match="row cap must be at least 1"):
        load_examples([f"{first}@0"], None)


@pytest.mark.slow  # trainer CLI subprocesses
def test_recipe_needs_the_hub_and_says_so_offline(tmp_path, cli_env):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "train",
            "--model",
            "unused",
            "--recipe",
            "mme5",
            "--output",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=cli_env,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "intfloat/mmE5-MMEB-hardneg:TAT-DQA: could not load hub dataset" in result.stderr
    assert "hf download" in result.stderr and "Traceback" not in result.stderr
    nothing = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--model", "m", "--output", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=cli_env,
    )
    assert nothing.returncode == 1 and "no training data" in nothing.stderr
