"""The decision to apply and the report of a ``trainer adapt`` run, without a model or a server."""

from __future__ import annotations

import json

from trainer.adapt import decide, guard_verdict
from trainer.adapt_report import charts, write_report
from trainer.heldout import metrics


def test_a_guard_drop_blocks_applying_and_the_report_says_so(tmp_path):
    before = {"overall": {"recall@10": 40.0}}
    after = {"overall": {"recall@10": 70.0}}
    fell = guard_verdict(
        {"MMEB overall P@1": {"before": 60.0, "after": 51.5}, "XTD mean R@10": {"before": 80.0, "after": 79.0}},
        max_drop=2.0,
    )
    assert fell["dropped"] == ["MMEB overall P@1"] and fell["scores"]["MMEB overall P@1"]["change"] == -8.5
    may, why = decide(before, after, fell)
    assert may is False and "guard dropped (MMEB overall P@1 60.0 → 51.5" in why and "--guard-max-drop" in why
    assert decide(before, after, guard_verdict({"XTD mean R@10": {"before": 80.0, "after": 78.5}}, 2.0))[0] is True
    assert decide(before, after, guard_verdict({"XTD mean R@10": {"before": 80.0, "after": 78.5}}, 1.0))[0] is False
    assert decide(after, before, None) == (False, "held-out recall@10 70.0 → 40.0: no gain, the index is unchanged")
    # the report of a run whose guard fell says so at the top and in its table
    result = {
        "overall": metrics([1, 3, 12]),
        "by_language": {"en": metrics([1, 3, 12])},
        "by_task": {"text": metrics([1, 3, 12])},
        "library": 30,
    }
    report = {
        "index": "/i",
        "model": "m",
        "split": {"heldout": 6, "train": 24, "share": 0.2},
        "synth": {"heldout": {"accepted": 3}, "train": {"accepted": 9}, "cost_usd": None},
        "training": {"steps": 2, "first_loss": 1.0, "last_loss": 0.5},
        "before": result,
        "after": result,
        "guard": fell,
        "applied": {"applied": False, "reason": why},
    }
    write_report(tmp_path, report)
    text = (tmp_path / "report.md").read_text()
    assert (
        "General-domain guard: MMEB overall P@1 60.0 → 51.5 (-8.5); XTD mean R@10 80.0 → 79.0 (-1.0); "
        "**dropped** by more than 2 points: MMEB overall P@1." in text
    )
    assert (
        "| MMEB overall P@1 | 60.0 | 51.5 | -8.5 | dropped |" in text
        and "| XTD mean R@10 | 80.0 | 79.0 | -1.0 | ok |" in text
    )
    assert json.loads((tmp_path / "report.json").read_text())["guard"]["dropped"] == ["MMEB overall P@1"]


def test_charts_are_png_files_in_the_run_folder(tmp_path):
    before = {"by_language": {"en": metrics([1, 12]), "es": metrics([3])}, "by_task": {"text": metrics([1, 3, 12])}}
    after = {"by_language": {"en": metrics([1, 1]), "es": metrics([1])}, "by_task": {"text": metrics([1, 1, 1])}}
    made = charts(tmp_path, before, after, [2.0, 1.5, 0.7])
    assert set(made) == {"recall10_by_language.png", "recall10_by_task.png", "training_loss.png", "report.png"}
    for name, path in made.items():
        assert path == str(tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_rows_spell_photo_searches_as_the_app_encodes_them(tmp_path):
    from mme5 import prompts
    from trainer.adapt import training_rows

    run = tmp_path / "synth-train"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"image_root": "/photos"}))

    def sample(modality, qry, query_image=""):
        return {
            "task": "retrieval",
            "modality": modality,
            "language": "de",
            "qry": qry,
            "query_text": "am Meer",
            "qry_image_path": query_image,
            "pos_text": prompts.IMAGE_DOCUMENT,
            "pos_image_path": "b.jpg",
            "neg_text": repr([prompts.IMAGE_DOCUMENT]),
            "neg_image_path": repr(["c.jpg"]),
        }

    rows = [
        sample("T->I", "synth's own instruction am Meer\n"),
        sample("IT->I", "synth's", "a.jpg"),
        sample("I->I", "synth's", "a.jpg"),
        sample("I->T", "<|image_1|>\nsynth's own caption task", "a.jpg"),
    ]
    (run / "samples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    found = training_rows(run)
    assert [row["qry"] for row in found] == [
        "Find me an everyday image that matches the given caption: am Meer\n",
        "<|image_1|>\nGiven an image, find a similar everyday image with the described changes: am Meer\n",
        "<|image_1|>\nFind a day-to-day image that looks similar to the provided image.\n",
        "<|image_1|>\nsynth's own caption task",  # not a photo search: synth's spelling is kept
    ]
    assert found[1]["qry_image_path"] == "/photos/a.jpg" and found[0]["qry_image_path"] == ""
    assert found[0]["pos_image_path"] == "/photos/b.jpg" and found[0]["neg_image_path"] == repr(["/photos/c.jpg"])
