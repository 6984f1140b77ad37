"""``trainer adapt`` end to end: coloured shapes, a generator that really looks at them, the tiny model.

The library: 9 classes (3 colours x 3 shapes) x 6 drawings. A scripted OpenAI-compatible
server (real HTTP, chat-completions wire format) decodes each image from its data URL and
names its colour and shape in the requested language (en, es, ru). ``adapt --apply`` must
raise held-out recall@10 well above its start, re-embed the index with the adapter, and a
search engine opened before the run must serve the gain without a restart.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import CAPTIONS, COLOURS, SHAPES, draw
from .shapes_server import answer, shapes_server
from ..synth.synth_fake_openai import FakeOpenAI, Reply, ok
from indexer.catalog import CATALOG_FILE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]  # trains; about 3 minutes on an idle 2-core box: 190 generator calls, 120 steps
PER_CLASS = 6
TRAIN = [
    "--steps",
    "120",
    "--batch-size",
    "16",
    "--lr",
    "1e-3",
    "--temperature",
    "0.05",
    "--warmup-ratio",
    "0.1",
    "--negative-ratio",
    "1",
    "--no-gradient-checkpointing",
    "--save-every",
    "0",
]


# the library's photos in order; they are named like a camera's (IMG_0007.png), which says nothing, so that the
# search's file-name words cannot give a class away: only the pictures can
PHOTO_CLASSES = [(colour, shape) for colour in COLOURS for shape in SHAPES for _ in range(PER_CLASS)]


def make_library(root: Path, tiny_mllama) -> Path:
    from indexer import build_index

    rng = random.Random(3)
    photos = root / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for number, (colour, shape) in enumerate(PHOTO_CLASSES):
        draw(colour, shape, rng).save(photos / f"IMG_{number:04d}.png")
    build_index([photos], root / "index", tiny_mllama, show_progress=False)
    return root / "index"


def adapt_command(index: Path, run: Path, server, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "trainer",
        "adapt",
        "--index",
        str(index),
        "--out",
        str(run),
        "--base-url",
        server.url,
        "--model",
        "fake-4o",
        "--api-key",
        "k",
        "--languages",
        "en,es,ru",
        "--tasks",
        "retrieval:T->I",
        "--concurrency",
        "4",
        "--timeout",
        "30",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def adapt(index: Path, run: Path, server, env, *extra) -> subprocess.CompletedProcess:
    """No terminal attached (stdin /dev/null, output captured): it must never ask."""
    return subprocess.run(
        adapt_command(index, run, server, *extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=ROOT,
        env=env,
    )


def adapt_on_terminal(command: list[str], env, answer: str, timeout: float = 600) -> tuple[int, str, bool]:
    """Run ``command`` with stdin, stdout and stderr on a pseudo-terminal; type ``answer`` when it asks [y/N].

    Returns (exit status, everything it wrote, whether it asked).
    """
    master, slave = os.openpty()
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, start_new_session=True
    )
    os.close(slave)
    output, asked = bytearray(), False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every copy of the terminal's other side is closed (the process ended)
                break
            if not chunk:
                break
            output += chunk
            if not asked and b"[y/N]" in output:
                os.write(master, answer.encode() + b"\n")
                asked = True
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return status, output.decode("utf-8", "replace"), asked


def app_precision(engine) -> float:
    """Share of the top-6 results (one class's worth) that show the captioned class, over 27 captions."""
    hits = []
    for colour in COLOURS:
        for shape in SHAPES:
            for caption in CAPTIONS.values():
                results = engine.search_text(caption(colour, shape), k=PER_CLASS).results
                hits += [PHOTO_CLASSES[int(Path(r.path).stem[4:])] == (colour, shape) for r in results]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def adapted(tiny_mllama, cli_env, tmp_path_factory):
    from indexer import IndexStore
    from search_app.engine import SearchEngine

    root = tmp_path_factory.mktemp("adapt")
    index = make_library(root, tiny_mllama)
    engine = SearchEngine(IndexStore.open(index), tiny_mllama, reload_interval=0)  # the app, running all along
    app_before = app_precision(engine)
    catalog = (index / CATALOG_FILE).stat().st_ino
    run = root / "run"
    with shapes_server() as server:
        # 1. no terminal, neither --apply nor --no-apply: all steps run, nothing is asked or applied
        unattended = adapt(index, run, server, cli_env, "--n", "144", "--n-eval", "45", *TRAIN)
        calls = len(server.requests)
        # 2. and 3. on a terminal the same command asks; "n" keeps the index, "y" re-embeds it
        command = adapt_command(index, run, server, "--n", "144", "--n-eval", "45", *TRAIN)
        declined = adapt_on_terminal(command, cli_env, "n")
        with IndexStore.open(index) as store:
            declined_index = (index / CATALOG_FILE).stat().st_ino, store.adapter
        declined_report = json.loads((run / "report.json").read_text())
        accepted = adapt_on_terminal(command, cli_env, "y")
        later_calls = len(server.requests) - calls
    assert unattended.returncode == 0, unattended.stderr[-4000:]
    yield {
        "root": root,
        "index": index,
        "run": run,
        "engine": engine,
        "app_before": app_before,
        "unattended": unattended,
        "declined": declined,
        "declined_index": declined_index,
        "declined_report": declined_report,
        "accepted": accepted,
        "catalog": catalog,
        "later_calls": later_calls,
    }
    engine.close()


def test_without_a_terminal_it_never_asks_and_says_how_to_apply(adapted):
    result = adapted["unattended"]
    assert "[y/N]" not in result.stderr
    assert "not applied" in result.stderr and "--apply" in result.stderr
    assert adapted["later_calls"] == 0  # the terminal reruns resumed: no generator call, no training


def test_on_a_terminal_n_leaves_the_index_and_y_applies(adapted):
    status, output, asked = adapted["declined"]
    assert status == 0 and asked, output[-3000:]
    assert "Re-index with the adapter and serve it? [y/N]" in output
    assert adapted["declined_index"] == (adapted["catalog"], None)  # same catalog file, no adapter
    assert adapted["declined_report"]["applied"]["applied"] is False
    assert "--apply" in adapted["declined_report"]["applied"]["reason"]
    status, output, asked = adapted["accepted"]
    assert status == 0 and asked, output[-3000:]
    assert "re-indexing every photo with the adapter" in output
    report = json.loads((adapted["run"] / "report.json").read_text())
    assert report["applied"]["applied"] is True
    assert (adapted["index"] / CATALOG_FILE).stat().st_ino != adapted["catalog"]  # a new generation


def test_adapt_raises_heldout_recall_and_applies_the_adapter(adapted):
    from indexer import IndexStore

    from trainer.adapt import heldout_side

    run = adapted["run"]
    report = json.loads((run / "report.json").read_text())
    before, after = report["before"]["overall"]["recall@10"], report["after"]["overall"]["recall@10"]
    print(f"held-out recall@10 before {before:.1f}, after {after:.1f} (library of {report['before']['library']})")
    assert report["before"]["library"] == 9 * PER_CLASS and report["after"]["overall"]["queries"] == 45
    assert after >= 50 and after >= before + 30  # measured: 8.9 -> 66.7, and 11.1 -> 68.9 on a later run
    assert set(report["after"]["by_language"]) == {"en", "es", "ru"} and set(report["after"]["by_task"]) == {"text"}
    assert report["applied"]["applied"] is True
    assert report["training"]["last_loss"] < report["training"]["first_loss"]
    for chart in ("report.png", "recall10_by_language.png", "recall10_by_task.png", "training_loss.png"):
        assert (run / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "recall@10 over the whole library" in (run / "report.md").read_text()
    # the index now holds the adapter's vectors, and keeps its own copy of the adapter
    with IndexStore.open(adapted["index"]) as store:
        assert store.adapter and Path(store.adapter).parent == adapted["index"] / "adapters"
        assert store.count == 9 * PER_CLASS
        held_out = {r.path for r in store.records(store.ids()) if heldout_side(r.content_hash, 0.2)}
    assert not (adapted["index"].parent / ".index.adapting").exists()
    # held-out photos never reach training: not as query, positive or negative
    rows = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    used = {
        p for row in rows for p in [row["qry_image_path"], row["pos_image_path"], *eval(row["neg_image_path"])] if p
    }  # noqa: S307
    assert held_out and used and not used & held_out
    queries = [json.loads(line) for line in (run / "heldout" / "samples.jsonl").read_text().splitlines()]
    root = json.loads((run / "heldout" / "run.json").read_text())["image_root"]
    assert {str(Path(root) / q["pos_image_path"]) for q in queries} <= held_out


def test_the_running_app_serves_the_gain_without_restart(adapted):
    engine = adapted["engine"]
    after = app_precision(engine)  # the first query notices the swapped index and loads its adapter
    print(f"app precision@6 before {adapted['app_before']:.2f}, after {after:.2f} (chance {1 / 9:.2f})")
    assert engine.embedder.adapter == engine.stats()["adapter"] and engine.embedder.adapter
    assert adapted["app_before"] <= 0.3 and after >= 0.5 and after >= adapted["app_before"] + 0.3  # measured 0.70


def test_eval_alone_measures_the_index_as_it_is_now(adapted, cli_env):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "eval",
            "--index",
            str(adapted["index"]),
            "--queries",
            str(adapted["run"] / "heldout"),
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(adapted["root"] / "eval.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=cli_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads((adapted["root"] / "eval.json").read_text())
    report = json.loads((adapted["run"] / "report.json").read_text())
    assert measured["overall"] == report["after"]["overall"]  # the served index reproduces "after" exactly
    assert "| language ru |" in result.stdout


def test_rerun_resumes_and_nothing_is_redone(adapted, cli_env):
    with shapes_server() as server:
        result = adapt(
            adapted["index"], adapted["run"], server, cli_env, "--n", "144", "--n-eval", "45", *TRAIN, "--apply"
        )
        calls = len(server.requests)
    assert result.returncode == 0, result.stderr[-3000:]
    assert calls == 0 and "re-indexing" not in result.stderr


def test_when_training_does_not_help_nothing_is_applied(tiny_mllama, cli_env, tmp_path):
    """lr 0: the adapter is the identity, so held-out recall and the guard's scores stay as they were."""
    from indexer import IndexStore

    index = make_library(tmp_path, tiny_mllama)
    guard = make_guard_sets(tmp_path / "guard")
    guard_flags = [
        "--guard-mmeb",
        str(guard["mmeb"]),
        "--guard-mmeb-image-dir",
        str(guard["mmeb_images"]),
        "--guard-xtd",
        str(guard["xtd"]),
        "--guard-xtd-image-dir",
        str(guard["xtd_images"]),
    ]
    catalog = (index / CATALOG_FILE).stat()
    with shapes_server() as server:
        dry = adapt(
            index,
            tmp_path / "run",
            server,
            cli_env,
            "--n",
            "18",
            "--n-eval",
            "9",
            "--price-in",
            "2.5",
            "--price-out",
            "10",
            *guard_flags,
            "--dry-run",
        )
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert "adapt plan" in dry.stdout and not server.requests  # the plan and its cost, before any call
        assert "about 30 calls" in dry.stdout and "cost ≈ $0." in dry.stdout
        assert "MMEB overall P@1 on 2 subset(s), 18 queries; XTD mean R@10 on 2 subset(s), 18 queries" in dry.stdout
        assert not (tmp_path / "run").exists()
        result = adapt(
            index,
            tmp_path / "run",
            server,
            cli_env,
            "--n",
            "18",
            "--n-eval",
            "9",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--lr",
            "0",
            *guard_flags,
            "--apply",
        )
        assert server.requests
    assert result.returncode == 0, result.stderr[-3000:]
    # the plan with its cost estimate is logged before the first generator answer is
    assert -1 < result.stderr.index("cost unknown") < result.stderr.index("adapt: heldout:")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["applied"]["applied"] is False and "no gain" in report["applied"]["reason"]
    assert report["after"]["overall"]["recall@10"] <= report["before"]["overall"]["recall@10"]
    with IndexStore.open(index) as store:
        assert store.adapter is None
    assert (index / CATALOG_FILE).stat().st_ino == catalog.st_ino and not (index / "adapters").exists()
    # the guard: both benchmarks scored before and after, the change reported in report.json and report.md
    scores = report["guard"]["scores"]
    print("guard:", json.dumps(scores))
    assert set(scores) == {"MMEB overall P@1", "XTD mean R@10"} and report["guard"]["dropped"] == []
    for value in scores.values():
        assert 0 <= value["before"] <= 100 and value["change"] == pytest.approx(value["after"] - value["before"])
        assert abs(value["change"]) <= 100 / 9  # identity adapter: at most one near-tie among 9 queries flips
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "## General-domain guard" in markdown and "| MMEB overall P@1 |" in markdown
    assert "no score fell by more than 2 points" in markdown
    saved = json.loads((tmp_path / "run" / "guard.json").read_text())
    assert saved["scores"] == {name: {"before": v["before"], "after": v["after"]} for name, v in scores.items()}
    assert saved["sets"] == {"mmeb": str(guard["mmeb"]), "xtd": str(guard["xtd"])}


def test_a_guard_folder_in_the_wrong_layout_fails_before_any_call(tiny_mllama, cli_env, tmp_path):
    index = make_library(tmp_path, tiny_mllama)
    (tmp_path / "mmeb" / "MyOwnSet").mkdir(parents=True)
    (tmp_path / "mmeb" / "MyOwnSet" / "test-00000-of-00001.parquet").write_text("not parquet")
    with shapes_server() as server:
        result = adapt(index, tmp_path / "run", server, cli_env, "--n", "18", "--guard-mmeb", str(tmp_path / "mmeb"))
        assert not server.requests
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "none of its subsets (MyOwnSet) is named as in MMEB-eval" in result.stderr


# -- a kill at any step resumes from the last finished one ---------------------------------------
def _kill_when(process: subprocess.Popen, ready, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"adapt ended before {what}: " + process.stderr.read()[-3000:]
    assert ready(), f"timed out waiting for {what}"
    process.send_signal(signal.SIGKILL)
    process.wait()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_kill_during_synthesis_or_training_resumes_after_the_last_finished_step(tiny_mllama, cli_env, tmp_path):
    index = make_library(tmp_path, tiny_mllama)
    run = tmp_path / "run"
    flags = [
        "--n",
        "18",
        "--n-eval",
        "9",
        "--steps",
        "10",
        "--batch-size",
        "4",
        "--lr",
        "0",
        "--save-every",
        "5",
        "--no-gradient-checkpointing",
    ]
    started = time.monotonic()
    train_samples = run / "synth-train" / "samples.jsonl"

    def answering_then_hanging(request, number):
        """Answers until 2 training samples are kept (held-out queries all done), then never in time."""
        if _lines(train_samples) < 2:
            return ok(answer(request, number))
        return Reply(content=answer(request, number), delay=300)

    # 1. killed while synthesising the training samples
    with FakeOpenAI(answering_then_hanging) as server:
        process = subprocess.Popen(
            adapt_command(index, run, server, *flags),
            cwd=ROOT,
            env=cli_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _kill_when(process, lambda: _lines(train_samples) >= 2, "training samples")
    heldout = (run / "heldout" / "samples.jsonl").read_bytes()
    kept = _lines(train_samples)
    assert _lines(run / "heldout" / "samples.jsonl") >= 9 and 0 < kept < 18 and not (run / "before.json").exists()
    print(f"killed during synthesis after {time.monotonic() - started:.0f} s with {kept} training samples")

    # 2. rerun: only the missing training samples are asked for; killed again in the middle of training
    checkpoint = run / "adapter" / "checkpoints" / "step-00000005"
    with shapes_server() as server:
        process = subprocess.Popen(
            adapt_command(index, run, server, *flags),
            cwd=ROOT,
            env=cli_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _kill_when(process, checkpoint.exists, "training checkpoint 5")
        second_calls = len(server.requests)
    assert (run / "heldout" / "samples.jsonl").read_bytes() == heldout  # finished step: untouched
    assert 0 < second_calls <= 18 - kept + 4  # at most one round of concurrent calls beyond the missing ones
    assert _lines(run / "synth-train" / "samples.jsonl") >= 18 and (run / "before.json").exists()
    assert not (run / "adapter" / "adapter_config.json").exists()  # really killed mid-training
    print(f"killed during training after {time.monotonic() - started:.0f} s, {second_calls} calls in the rerun")

    # 3. rerun: no generator call, training continues from step 5, the run finishes
    with shapes_server() as server:
        result = adapt(index, run, server, cli_env, *flags)
        assert not server.requests
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (run / "adapter" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))
    assert json.loads((run / "report.json").read_text())["training"]["steps"] == 10
    print(f"finished after {time.monotonic() - started:.0f} s")


# -- the general-domain guard, on sets in the published layouts -------------------------------------
def make_guard_sets(root: Path) -> dict:
    """Tiny MMEB-eval and XTD-10 folders as ``hf download --repo-type dataset`` writes them.

    ``MMEB-eval/<Subset>/test-00000-of-00001.parquet`` and ``XTD-10/<lang>/test-00000-of-00001.parquet``,
    columns ``qry_text, qry_img_path, tgt_text[], tgt_img_path[]`` (candidate 0 the answer), texts with
    MMEB's ``<|image_1|>\\n`` placeholder, image paths relative to the unpacked image folder.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(11)
    classes = [(c, s) for c in COLOURS for s in SHAPES]

    def picture(images: Path, folder: str, colour: str, shape: str, number: int) -> str:
        name = f"{folder}/{colour}-{shape}-{number}.png"
        (images / folder).mkdir(parents=True, exist_ok=True)
        draw(colour, shape, rng).save(images / name)
        return name

    mmeb_images, xtd_images = root / "images" / "MMEB-eval", root / "images" / "XTD10_dataset"  # unpacked apart

    def write(path: Path, rows: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path)

    document = "<|image_1|>\nRepresent the given image.\n"
    imagenet = []  # classification: image -> its class name among all nine
    for number, (colour, shape) in enumerate(classes):
        others = [f"{c} {s}" for c, s in classes if (c, s) != (colour, shape)]
        imagenet.append(
            {
                "qry_text": "<|image_1|>\nRepresent the given image for classification\n",
                "qry_img_path": picture(mmeb_images, "ImageNet-1K", colour, shape, number),
                "tgt_text": [f"{colour} {shape}", *others],
                "tgt_img_path": [""] * 9,
            }
        )
    write(root / "MMEB-eval" / "ImageNet-1K" / "test-00000-of-00001.parquet", imagenet)
    coco = []  # text -> image among 12 drawings
    for number, (colour, shape) in enumerate(classes):
        wrong = [rng.choice([k for k in classes if k != (colour, shape)]) for _ in range(11)]
        paths = [picture(mmeb_images, "MSCOCO_t2i", colour, shape, 100 + number)]
        paths += [picture(mmeb_images, "MSCOCO_t2i", c, s, 200 + 11 * number + i) for i, (c, s) in enumerate(wrong)]
        coco.append(
            {
                "qry_text": f"Find me an everyday image that matches the given caption: a {colour} {shape}.\n",
                "qry_img_path": "",
                "tgt_text": [document] * 12,
                "tgt_img_path": paths,
            }
        )
    write(root / "MMEB-eval" / "MSCOCO_t2i" / "test-00000-of-00001.parquet", coco)
    (root / "MMEB-eval" / "README.md").write_text("dataset card\n")  # a hub download has one; not a subset
    for language in ("es", "ru"):
        rows = []
        for number, (colour, shape) in enumerate(classes):
            wrong = [rng.choice([k for k in classes if k != (colour, shape)]) for _ in range(11)]
            paths = [picture(xtd_images, language, colour, shape, number)]
            paths += [picture(xtd_images, language, c, s, 100 + 11 * number + i) for i, (c, s) in enumerate(wrong)]
            rows.append(
                {
                    "qry_text": CAPTIONS[language](colour, shape),
                    "qry_img_path": "",
                    "tgt_text": [document] * 12,
                    "tgt_img_path": paths,
                }
            )
        write(root / "XTD-10" / language / "test-00000-of-00001.parquet", rows)
    return {"mmeb": root / "MMEB-eval", "xtd": root / "XTD-10", "mmeb_images": mmeb_images, "xtd_images": xtd_images}
