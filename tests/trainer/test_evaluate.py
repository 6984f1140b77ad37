"""MMEB/XTD evaluation on fixtures whose scores are known by construction.

A candidate identical to the query gets the same vector (each unique input is embedded
once), so it scores the maximum; that lets each row be made a hit or a miss on purpose,
whatever the (random) tiny model's weights are.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from trainer.evaluate import EvalDataError, evaluate, markdown

DOC = "<|image_1|>\nRepresent the given image.\n"


def image_row(images, query, answer, distractors):
    """Image-document rows: the query image vs candidate images."""
    return {
        "qry_text": DOC,
        "qry_img_path": images[query],
        "tgt_text": [DOC] * (1 + len(distractors)),
        "tgt_img_path": [images[answer]] + [images[d] for d in distractors],
    }


def text_row(query, answer, distractors):
    return {"qry_text": query, "qry_img_path": "", "tgt_text": str([answer] + distractors), "tgt_img_path": ""}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    import datasets
    import numpy as np

    root = tmp_path_factory.mktemp("eval")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    images = {}
    for name in "abcdef":
        Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(root / "img" / f"{name}.png")
        images[name] = f"{name}.png"
    mmeb, xtd = root / "mmeb", root / "xtd"
    mmeb.mkdir(), xtd.mkdir()
    # ImageNet-1K (Classification, IND): 3 of 4 right -> 75
    write_jsonl(
        mmeb / "ImageNet-1K.jsonl",
        [
            image_row(images, "a", "a", ["b", "c"]),
            image_row(images, "b", "b", ["a", "c"]),
            text_row("<|image_1|>\nzebra", "<|image_1|>\nzebra", ["horse", "donkey"]),
            image_row(images, "c", "d", ["c", "e"]),  # a distractor equals the query: miss
        ],
    )
    # MSCOCO_t2i (Retrieval, IND): 1 of 2 -> 50
    write_jsonl(mmeb / "MSCOCO_t2i.jsonl", [text_row("dog", "dog", ["cat"]), text_row("cat", "lion", ["cat", "dog"])])
    # ImageNet-A (Classification, OOD) as a datasets folder: 2 of 2 -> 100
    datasets.Dataset.from_list(
        [
            {"qry_text": "red", "qry_img_path": "", "tgt_text": ["red", "blue"], "tgt_img_path": ["", ""]},
            {
                "qry_text": DOC,
                "qry_img_path": images["e"],
                "tgt_text": [DOC, DOC],
                "tgt_img_path": [images["e"], images["f"]],
            },
        ]
    ).save_to_disk(str(mmeb / "ImageNet-A"))
    words = [f"word{i}" for i in range(12)]
    write_jsonl(
        xtd / "es.jsonl",
        [
            text_row("perro", "perro", words[:11]),  # rank 0: hit at 1 and 10
            text_row("gato", "tigre", ["gato"] * 10 + words[:1]),  # 10 candidates above the answer: miss
            text_row("pez", "atún", ["pez"] * 9),  # 9 above: R@10 hit, P@1 miss
        ],
    )
    write_jsonl(xtd / "it.jsonl", [text_row("cane", "cane", words)])
    return root


def test_mmeb_precision_and_paper_grouping(tiny_mllama, fixtures):
    report = evaluate(tiny_mllama, mmeb=fixtures / "mmeb", image_dir=fixtures / "img")
    datasets = report["mmeb"]["datasets"]
    assert datasets["ImageNet-1K"]["precision_at_1"] == 75.0
    assert datasets["MSCOCO_t2i"]["precision_at_1"] == 50.0
    assert datasets["ImageNet-A"]["precision_at_1"] == 100.0
    # each unique input once: ImageNet-1K has images a-e as documents plus 3 texts
    assert datasets["ImageNet-1K"]["inputs_embedded"] == 5 + 3
    summary = report["mmeb"]["summary"]
    assert summary["Classification"] == pytest.approx(87.5)
    assert summary["Retrieval"] == 50.0 and summary["VQA"] is None and summary["Grounding"] is None
    assert summary["IND"] == pytest.approx(62.5) and summary["OOD"] == 100.0
    assert summary["Overall"] == pytest.approx(75.0)
    assert len(report["mmeb"]["missing"]) == 33
    table = markdown(report)
    assert "| ours | 87.5 | – | 50.0 | – | 62.5 | 100.0 | 75.0 |" in table
    assert "mmE5 (paper)" not in table  # paper figures only beside a full-size model


def test_xtd_recall_at_10(tiny_siglip, fixtures):
    report = evaluate(tiny_siglip, xtd=fixtures / "xtd", image_dir=fixtures / "img")
    es = report["xtd"]["languages"]["es"]
    assert es["recall_at_10"] == pytest.approx(200 / 3) and es["precision_at_1"] == pytest.approx(100 / 3)
    assert report["xtd"]["languages"]["it"]["recall_at_10"] == 100.0
    assert report["xtd"]["mean"] == pytest.approx((200 / 3 + 100) / 2)
    assert report["xtd"]["missing"] == ["ru", "zh", "pl", "tr", "ko"]


def test_paper_figures_shown_beside_a_full_size_model(tiny_mllama, fixtures):
    report = evaluate(tiny_mllama, xtd=fixtures / "xtd", image_dir=fixtures / "img")
    report["dim"] = 4096  # what a Llama-3.2-11B-Vision backbone reports
    table = markdown(report)
    assert "| mmE5 (paper) | 96.1 | 96.2 | 93.3 | 96.3 | 95.4 | 93.6 | 96.0 | 95.3 |" in table


def test_missing_images_fail_before_any_embedding(tiny_mllama, fixtures, tmp_path):
    bad = tmp_path / "mmeb"
    bad.mkdir()
    write_jsonl(
        bad / "CIRR.jsonl", [{"qry_text": DOC, "qry_img_path": "gone.png", "tgt_text": ["x"], "tgt_img_path": [""]}]
    )
    with pytest.raises(EvalDataError, match=r"CIRR.jsonl: 1 image\(s\) not found, e.g. .*gone.png; is --image-dir"):
        evaluate(tiny_mllama, mmeb=bad, image_dir=fixtures / "img")
    write_jsonl(bad / "CIRR.jsonl", [{"qry_text": "q", "tgt_text": ["a", "b"], "tgt_img_path": ["a.png"]}])
    with pytest.raises(EvalDataError, match="row 1: 2 tgt_text but 1 tgt_img_path"):
        evaluate(tiny_mllama, mmeb=bad, image_dir=fixtures / "img")


@pytest.mark.slow  # evaluates through the CLI: 70 s at load average ~10 on 2 cores
def test_eval_cli_writes_json_and_markdown(tiny_mllama_dir, fixtures, tmp_path):
    out = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "eval",
            "--model",
            str(tiny_mllama_dir),
            "--mmeb",
            str(fixtures / "mmeb"),
            "--xtd",
            str(fixtures / "xtd"),
            "--image-dir",
            str(fixtures / "img"),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["mmeb"]["summary"]["Overall"] == pytest.approx(75.0)
    assert report["xtd"]["languages"]["es"]["recall_at_10"] == pytest.approx(200 / 3)
    assert "## MMEB (Precision@1, %)" in result.stdout  # the table goes to stdout, progress to stderr
    assert out.with_suffix(".md").read_text().strip() == result.stdout.strip()
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "eval",
            "--model",
            str(tiny_mllama_dir),
            "--image-dir",
            str(fixtures / "img"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "give --mmeb DIR and/or --xtd DIR" in missing.stderr
