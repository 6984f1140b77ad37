"""``trainer adapt``: measure search quality on the user's own library, adapt the model to it, apply it.

Steps, each finished one kept in the run folder so a rerun continues after the last one:
split (by content hash) -> synth (held-out queries, training samples) -> before (held-out
recall over the whole library) -> train (LoRA) -> after -> guard (optional MMEB/XTD) ->
apply (only if held-out recall@10 improved) -> report (markdown, JSON, PNG charts).
"""

from __future__ import annotations

import hashlib
import json
import locale
import logging
import math
import os
import sys
from pathlib import Path

from mme5.atomic import write_atomic

from .adapt_report import charts, write_report
from .errors import AdaptError
from .heldout import Library, library_vectors_for, load_queries, measure, table

logger = logging.getLogger(__name__)

DEFAULT_TASKS = "retrieval:T->I=0.6,retrieval:IT->I=0.2,retrieval:I->I=0.2"
# rough per-call token counts for the cost estimate (see docs/synth.md, "Cost estimate"): prompt text + images, answer
PROMPT_TOKENS, IMAGE_TOKENS, ANSWER_TOKENS = 650, 765, 700
ACCEPTANCE = 0.9
HELDOUT_DIR, TRAIN_SYNTH_DIR, ADAPTER_DIR = "heldout", "synth-train", "adapter"
TEXT_PAIRS_FILE = "text-pairs.jsonl"  # the OCR/keyword pairs (trainer/textpairs.py), written once per run


def log(message: str) -> None:
    logger.info(f"adapt: {message}")


# -- split -----------------------------------------------------------------------------------
def heldout_side(content_hash: str, share: float) -> bool:
    """Deterministic, content-based: copies of a photo land on the same side, whatever their path."""
    value = int(hashlib.sha256(f"adapt-split:{content_hash}".encode()).hexdigest()[:13], 16) / 16**13
    return value < share


def split_library(store, share: float) -> dict:
    ids = store.ids()
    heldout, train = [], []
    for start in range(0, len(ids), 1000):
        for record in store.records(ids[start : start + 1000]):
            if record is not None:
                (heldout if heldout_side(record.content_hash or record.path, share) else train).append(record.id)
    if len(heldout) < 3 or len(train) < 3:
        raise AdaptError(
            f"{store.index_dir}: {len(ids)} photos give {len(heldout)} held-out and {len(train)} training "
            f"photos at --heldout {share}; each side needs at least 3 (index more photos or change it)"
        )
    return {"heldout": heldout, "train": train, "share": share, "fingerprint": store.fingerprint}


# -- languages, tasks, cost ---------------------------------------------------------------------
def default_languages() -> str:
    """English plus the language of the user's locale (``uk_UA`` -> uk), when synth knows it."""
    from synth.languages import NAMES

    code = (locale.getlocale()[0] or os.environ.get("LANG", "") or "").split("_")[0].split(".")[0].lower()
    return "en" if code in ("", "en", "c", "posix") or code not in NAMES else f"en,{code}"


def estimate_cost(n: int, combos: dict, prices) -> dict:
    """Tokens and USD for about ``n`` accepted samples (synth's accounting: prompt, images, answer)."""
    from synth.costs import cost
    from synth.tasks import Combo

    images = sum(
        weight * (Combo(name).query_image + 2 * Combo(name).target_image) for (_, name), weight in combos.items()
    )
    calls = math.ceil(n / ACCEPTANCE)
    tokens_in = int(calls * (PROMPT_TOKENS + IMAGE_TOKENS * images))
    tokens_out = calls * ANSWER_TOKENS
    return {
        "calls": calls,
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "cost_usd": cost(tokens_in, tokens_out, prices),
    }


# -- synthesis ----------------------------------------------------------------------------------
def generator_settings(args):
    """synth's generator as ``trainer adapt``'s options describe it (``--temperature-gen`` is its temperature)."""
    from synth.generator import GeneratorSettings

    return GeneratorSettings(
        backend=args.backend,
        model=args.model,
        base_url=args.base_url,
        api_key=args.api_key,
        timeout=args.timeout,
        max_retries=args.max_retries,
        json_mode=not args.no_json_mode,
        image_size=args.image_size,
        max_tokens=args.max_tokens,
        temperature=args.gen_temperature,
        device=args.device,
        price_in=args.price_in,
        price_out=args.price_out,
    )


def synthesise(args, store, ids, out: Path, n: int, seed: int, show_progress: bool) -> dict:
    """Run synth over the images ``ids`` only (neighbours too) into the run folder ``out``; resumable."""
    from synth import languages, tasks
    from synth.configure import NEGATIVE_RANKS, POSITIVE_RANKS, Configurator
    from synth.output import RunFolder
    from synth.pool import ImagePool
    from synth.prompt import PROMPT_VERSION
    from synth.generator import backend_from_settings
    from synth.run import generate
    from synth.stats import run_stats

    folder = RunFolder(out)
    if folder.exists() and sum(1 for _ in folder.samples()) >= n:  # finished: nothing to call (index may have moved on)
        stats = run_stats(folder)
        return {
            key: stats[key]
            for key in (
                "accepted",
                "failed",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
                "by_language",
                "structured_output",
            )
        }
    weights = languages.parse_weights(args.languages, languages.NAMES, "language")
    combos = tasks.parse_tasks(args.tasks)
    generator = generator_settings(args)
    model = generator.model_name()
    pool = ImagePool(store, among=ids)
    negative = (min(NEGATIVE_RANKS[0], max(2, len(ids) // 4)), NEGATIVE_RANKS[1])
    positive = (POSITIVE_RANKS[0], min(POSITIVE_RANKS[1], negative[0] - 1))
    configurator = Configurator(combos, weights, pool, seed, positive, negative)
    prices = generator.prices()
    settings = {
        "backend": args.backend,
        "model": model,
        "base_url": args.base_url,
        "seed": seed,
        "languages": weights,
        "prompt_version": PROMPT_VERSION,
        "tasks": {f"{task}:{combo}": weight for (task, combo), weight in combos.items()},
        "positive_ranks": list(positive),
        "negative_ranks": list(negative),
        "index_dir": str(store.index_dir),
        "pool": pool.fingerprint,
        "image_root": pool.root,
        "prices": list(prices) if prices else None,
    }
    folder.start(settings)
    summary = generate(
        folder,
        configurator,
        backend_from_settings(generator),
        n,
        args.concurrency,
        None,
        prices,
        show_progress=show_progress,
    )
    if summary.attempted:
        log(f"{out.name}: " + summary.format().removeprefix("synth: "))
    if summary.accepted_before + summary.accepted < n:
        raise AdaptError(
            f"{out}: only {summary.accepted_before + summary.accepted} of {n} samples accepted "
            f"({summary.stopped}); rerun the same command to continue"
        )
    stats = run_stats(folder)  # the whole run folder, earlier (resumed) runs included
    return {
        key: stats[key]
        for key in (
            "accepted",
            "failed",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "by_language",
            "structured_output",
        )
    }


# -- measurement --------------------------------------------------------------------------------
# -- training rows ------------------------------------------------------------------------------
def synthetic_pairs(folder: Path) -> set[tuple[str, str]]:
    """(lower-cased query, absolute photo path) of the synthetic text searches of a synth run folder."""
    from synth.output import RunFolder

    run = RunFolder(folder)
    root = run.manifest()["image_root"]
    return {
        (" ".join(str(row.get("query_text") or "").split()).lower(), os.path.join(root, row["pos_image_path"]))
        for row in run.samples()
        if row.get("modality") == "T->I" and row.get("pos_image_path")
    }


def training_rows(folder: Path) -> list[dict]:
    """synth samples as trainer rows; photo-search queries spelled exactly as the app encodes them."""
    from synth.output import RunFolder
    from synth.tasks import Combo

    from .data import app_query, parse_list

    run = RunFolder(folder)
    root = run.manifest()["image_root"]
    out = []
    for row in run.samples():
        row = dict(row)
        if Combo(str(row["modality"])).query_kind is not None:
            row["qry"] = app_query(row.get("query_text") or "", str(row["modality"]))
        for column in ("qry_image_path", "pos_image_path"):
            row[column] = os.path.join(root, row[column]) if row.get(column) else ""
        row["neg_image_path"] = repr(
            [os.path.join(root, p) if p else "" for p in parse_list(row["neg_image_path"], "n")]
        )
        out.append(
            {
                key: row[key]
                for key in (
                    "qry",
                    "qry_image_path",
                    "pos_text",
                    "pos_image_path",
                    "neg_text",
                    "neg_image_path",
                    "language",
                    "modality",
                )
            }
        )
    return out


def _write(path: Path, text: str) -> None:
    write_atomic(path, text.encode("utf-8"))


def _read(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# -- the command ---------------------------------------------------------------------------------
def _plan_settings(args, split: dict) -> dict:
    return {
        "index": str(Path(args.index).absolute()),
        "fingerprint": split["fingerprint"],
        "heldout": args.heldout,
        "languages": args.languages,
        "tasks": args.tasks,
        "n": args.n,
        "n_eval": args.n_eval,
        "seed": args.seed,
        "backend": args.backend,
        "model": args.model,
        "mix": args.mix,
        "steps": args.steps,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "temperature": args.temperature,
        "lora_r": args.lora_r,
        "lora_targets": args.lora_targets,
        # only when on: a run folder made before --text-pairs existed continues as it was
        **({"text_pairs": True} if args.text_pairs else {}),
    }


def _check_plan(run: Path, settings: dict) -> None:
    previous = _read(run / "plan.json")
    if previous is not None:
        keys = [*settings, *(["text_pairs"] if "text_pairs" in previous and "text_pairs" not in settings else [])]
        changed = {k: (previous.get(k), settings.get(k)) for k in keys if previous.get(k) != settings.get(k)}
        if changed:
            detail = "; ".join(f"{k}: was {old!r}, now {new!r}" for k, (old, new) in changed.items())
            raise AdaptError(
                f"{run} holds an adapt run with other settings ({detail}); rerun with the same "
                "settings to continue it, or choose a new --out"
            )
    _write(run / "plan.json", json.dumps(settings, indent=2, ensure_ascii=False))


def _interactive() -> bool:
    """Someone can answer: stdin and stderr are a terminal (never true under cron, CI or a pipe)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def _ask(question: str) -> bool:
    print(question + " [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _train(args, model: str, run: Path, show_progress: bool) -> dict:
    from .data import expand_recipe
    from .model import LoraSettings
    from .train import LOG_FILE, TrainConfig, latest_checkpoint, train

    output = run / ADAPTER_DIR
    if not (output / "adapter_config.json").exists():
        rows = training_rows(run / TRAIN_SYNTH_DIR)
        if (run / TEXT_PAIRS_FILE).exists():
            rows += [json.loads(line) for line in (run / TEXT_PAIRS_FILE).read_text(encoding="utf-8").splitlines()]
        data_file = run / "train.jsonl"
        _write(data_file, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        resume = latest_checkpoint(output) is not None or (output / LOG_FILE).exists()
        config = TrainConfig(
            model=model,
            data=expand_recipe(None, [str(data_file), *args.mix]),
            output=str(output),
            image_dir=args.mix_image_dir,
            max_steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_ratio=args.warmup_ratio,
            temperature=args.temperature,
            negative_ratio=args.negative_ratio,
            lora=LoraSettings(r=args.lora_r, targets=args.lora_targets or []),
            gradient_checkpointing=not args.no_gradient_checkpointing,
            device=args.device,
            seed=args.seed,
            save_every=args.save_every,
            resume=resume,
            show_progress=show_progress,
        )
        train(config)
    losses = [json.loads(line)["loss"] for line in (output / LOG_FILE).read_text().splitlines() if line.strip()]
    return {
        "steps": len(losses),
        "losses": losses,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "adapter": str(output),
    }


GUARD_SCORES = {"mmeb": "MMEB overall P@1", "xtd": "XTD mean R@10"}


def check_guard(args) -> list[str]:
    """Read every guard subset now (cheap), so a wrong folder fails before any paid call or training."""
    from .benchmarks import MMEB_DATASETS, XTD_LANGUAGES
    from .evaluate import find_subsets, read_rows

    if not args.guard_max_drop >= 0:
        raise AdaptError(f"--guard-max-drop {args.guard_max_drop}: give the points a guard score may fall, 0 or more")
    described = []
    for what, folder, known in (("mmeb", args.guard_mmeb, MMEB_DATASETS), ("xtd", args.guard_xtd, XTD_LANGUAGES)):
        if not folder:
            continue
        images = _guard_images(args, what)
        if not images.is_dir():
            raise AdaptError(
                f"{images}: image folder of --guard-{what} not found (--guard-{what}-image-dir or "
                "--guard-image-dir: the folder its image paths are relative to)"
            )
        subsets = find_subsets(folder)
        if not set(subsets) & set(known):
            raise AdaptError(
                f"{folder}: none of its subsets ({', '.join(sorted(subsets))}) is named as in "
                f"{'MMEB-eval (ImageNet-1K, MSCOCO_t2i, ...)' if what == 'mmeb' else 'XTD-10 (it, es, ...)'}"
                f"; --guard-{what} needs those names to compute {GUARD_SCORES[what]}"
            )
        rows = sum(len(read_rows(source, images)) for source in subsets.values())
        described.append(f"{GUARD_SCORES[what]} on {len(subsets)} subset(s), {rows} queries")
    return described


def _guard_images(args, what: str) -> Path:
    return Path(getattr(args, f"guard_{what}_image_dir", None) or args.guard_image_dir)


def guard_verdict(scores: dict, max_drop: float) -> dict:
    """Before, after and change per guard score; ``dropped`` names those that fell by more than ``max_drop``."""
    found = {
        name: {"before": v["before"], "after": v["after"], "change": round(v["after"] - v["before"], 4)}
        for name, v in scores.items()
    }
    dropped = [name for name, v in found.items() if v["change"] < -max_drop]
    return {"scores": found, "max_drop": max_drop, "dropped": dropped}


def _guard(args, model: str, serving: str | None, adapter: Path, run: Path) -> dict | None:
    """The guard sets scored by the model the index serves now and by the new adapter."""
    if not (args.guard_mmeb or args.guard_xtd):
        return None
    sets = {
        what: str(Path(folder).absolute())
        for what, folder in (("mmeb", args.guard_mmeb), ("xtd", args.guard_xtd))
        if folder
    }
    saved = _read(run / "guard.json") or {}
    scores = saved.get("scores") if saved.get("sets") == sets else None  # other guard sets: measure them
    if scores is None:
        from mme5 import load_embedder

        from .evaluate import evaluate

        scores = {}
        for when, adapter_path in (("before", serving), ("after", str(adapter))):
            log(f"general-domain guard, {when}")
            embedder = load_embedder(model, device=args.device, adapter=adapter_path)
            if args.guard_mmeb:
                report = evaluate(
                    embedder,
                    mmeb=args.guard_mmeb,
                    image_dir=_guard_images(args, "mmeb"),
                    show_progress=not args.no_progress,
                )
                scores.setdefault(GUARD_SCORES["mmeb"], {})[when] = round(report["mmeb"]["summary"]["Overall"], 4)
            if args.guard_xtd:
                report = evaluate(
                    embedder,
                    xtd=args.guard_xtd,
                    image_dir=_guard_images(args, "xtd"),
                    show_progress=not args.no_progress,
                )
                scores.setdefault(GUARD_SCORES["xtd"], {})[when] = round(report["xtd"]["mean"], 4)
            del embedder
        _write(run / "guard.json", json.dumps({"sets": sets, "scores": scores}, indent=2))
    verdict = guard_verdict(scores, args.guard_max_drop)
    for name, value in verdict["scores"].items():
        log(f"guard {name}: {value['before']:.1f} → {value['after']:.1f} ({value['change']:+.1f})")
    return verdict


def decide(before: dict, after: dict, guard: dict | None) -> tuple[bool, str]:
    """(may apply, why): held-out recall@10 must improve and no guard score fall past --guard-max-drop."""
    reason = f"held-out recall@10 {before['overall']['recall@10']:.1f} → {after['overall']['recall@10']:.1f}"
    if after["overall"]["recall@10"] <= before["overall"]["recall@10"]:
        return False, reason + ": no gain, the index is unchanged"
    if guard and guard["dropped"]:
        fallen = ", ".join(
            f"{name} {guard['scores'][name]['before']:.1f} → {guard['scores'][name]['after']:.1f}"
            for name in guard["dropped"]
        )
        return False, (
            reason + f", but the general-domain guard dropped ({fallen}: more than "
            f"--guard-max-drop {guard['max_drop']:g} points): not applied; to apply it anyway rerun "
            "with a larger --guard-max-drop and --apply"
        )
    return True, reason


def run_adapt(args) -> int:
    from indexer import IndexStore
    from indexer.reindex import reindex_with_adapter
    from mme5.model_ref import ModelRef
    from mme5 import load_embedder
    from synth import tasks as synth_tasks

    from .data import split_cap

    run = Path(args.out)
    show = not args.no_progress
    args.languages = args.languages or default_languages()
    args.tasks = args.tasks or DEFAULT_TASKS
    args.n_eval = args.n_eval or max(20, args.n // 5)
    for source in args.mix:
        split_cap(source)  # a bad @ROWS fails now, not after synthesis
    store = IndexStore.open(args.index)
    try:
        split = _read(run / "split.json") or split_library(store, args.heldout)
        applied_before = (_read(run / "applied.json") or {}).get("applied")  # then the index moved on by design
        if split["fingerprint"] != store.fingerprint and not applied_before:
            raise AdaptError(f"{run}: made for another state of the index ({split['fingerprint']}); choose a new --out")
        model, serving = ModelRef.canonical_of(store.model_id), ModelRef.canonical_of(store.adapter)
        combos = synth_tasks.parse_tasks(args.tasks)
        guard_sets = check_guard(args)
        generator = generator_settings(args)
        estimate = estimate_cost(args.n + args.n_eval, combos, generator.prices())
        cost = (
            "unknown (no price for this model: pass --price-in/--price-out)"
            if estimate["cost_usd"] is None
            else f"≈ ${estimate['cost_usd']:.2f}"
        )
        plan = [
            f"index {store.index_dir}: {store.count} photos, model {store.model_id}"
            + (f" + adapter {store.adapter}" if store.adapter else ""),
            f"split by content hash: {len(split['heldout'])} held-out photos (queries only, never trained on), "
            f"{len(split['train'])} training photos",
            f"synth ({args.backend}, {generator.model_name()}): {args.n_eval} held-out queries + {args.n} training samples, "
            f"languages {args.languages}, tasks {args.tasks}",
            f"  about {estimate['calls']} calls, {estimate['prompt_tokens']:,} input + "
            f"{estimate['completion_tokens']:,} output tokens, cost {cost}",
            f"measure recall@1/5/10 and MRR on the held-out queries with all {store.count} photos as candidates",
            f"train a LoRA adapter ({args.steps} steps, batch {args.batch_size}, lr {args.lr})"
            + (f" mixed with {', '.join(args.mix)}" if args.mix else "")
            + (
                f", plus up to {args.n} query → photo pairs from the text OCR read in the training photos "
                "and their keywords/descriptions (--text-pairs)"
                if args.text_pairs
                else ""
            ),
            "measure again",
            *(
                [
                    f"general-domain guard before/after: {'; '.join(guard_sets)} (not applied if one falls by more "
                    f"than {args.guard_max_drop:g} points)"
                ]
                if guard_sets
                else []
            ),
            "apply (re-index with the adapter) only if held-out recall@10 improved"
            + (
                " (--apply)"
                if args.apply
                else " (--no-apply: never)"
                if args.no_apply
                else " and you say yes (asked on a terminal; otherwise rerun with --apply)"
            ),
            f"report: {run / 'report.md'}, report.json, PNG charts",
        ]
        if args.dry_run:
            print("\n".join(["adapt plan (nothing is called or written):"] + [f"  {line}" for line in plan]))
            return 0
        for line in plan:
            log(line)
        run.mkdir(parents=True, exist_ok=True)
        _check_plan(run, _plan_settings(args, split))
        _write(run / "split.json", json.dumps(split))

        synth_report = {}
        for name, ids, n, seed in (
            (HELDOUT_DIR, split["heldout"], args.n_eval, args.seed + 1),
            (TRAIN_SYNTH_DIR, split["train"], args.n, args.seed),
        ):
            synth_report[name] = synthesise(args, store, ids, run / name, n, seed, show)
        text_report = _text_pairs(args, store, split["train"], run)
        rows, root = load_queries(run / HELDOUT_DIR)
        library = Library(store)

        before = _read(run / "before.json")
        if before is None:
            log("measuring the current model on the held-out queries")
            current = load_embedder(model, device=args.device, adapter=serving)
            before = measure(current, store.vectors(library.ids), library, rows, root, show)
            _write(run / "before.json", json.dumps(before, indent=2))
            del current
        log("before:\n" + table(before, "before"))
    finally:
        store.close()

    training = _train(args, model, run, show)
    after = _read(run / "after.json")
    if after is None:
        log("measuring the adapted model (every photo re-embedded)")
        adapted = load_embedder(model, device=args.device, adapter=str(run / ADAPTER_DIR))
        vectors = library_vectors_for(adapted, library, run / "after-library.npy", show)
        after = measure(adapted, vectors, library, rows, root, show)
        _write(run / "after.json", json.dumps(after, indent=2))
        del adapted
    log("after:\n" + table(after, "after"))
    guard = _guard(args, model, serving, run / ADAPTER_DIR, run)

    applied = _read(run / "applied.json")
    may_apply, reason = decide(before, after, guard)
    asked = not args.apply and not args.no_apply and _interactive()
    # decide (again) unless it is decided for good: applied, or not improved; a "no" is asked again next time
    if applied is None or (not applied["applied"] and may_apply and (args.apply or asked)):
        improved = after["overall"]["recall@10"] > before["overall"]["recall@10"]
        if not may_apply:
            applied = {"applied": False, "improved": improved, "reason": reason}
        elif args.apply or (asked and _ask(f"adapt: {reason}. Re-index with the adapter and serve it?")):
            log(f"{reason}: re-indexing every photo with the adapter (the current index serves until it is done)")
            done = reindex_with_adapter(Path(args.index), model, run / ADAPTER_DIR, args.device, show)
            unreadable = done.pop("unreadable")
            if unreadable:
                log(f"re-index: {unreadable} file(s) could not be read (as in the old index)")
            applied = {"applied": True, "improved": True, "reason": reason + "; re-indexed with the adapter", **done}
        else:
            applied = {
                "applied": False,
                "improved": True,
                "reason": reason + "; not applied "
                "(to apply it: rerun the same command with --apply, or on a terminal answer y)",
            }
        _write(run / "applied.json", json.dumps(applied, indent=2))
    log(applied["reason"])

    report = {
        "index": str(Path(args.index).absolute()),
        "model": store.model_id,
        "split": {"heldout": len(split["heldout"]), "train": len(split["train"]), "share": split["share"]},
        "languages": args.languages,
        "tasks": args.tasks,
        "synth": {
            "heldout": synth_report[HELDOUT_DIR],
            "train": synth_report[TRAIN_SYNTH_DIR],
            "cost_usd": _sum_costs(synth_report.values()),
        },
        "text_pairs": text_report,
        "before": before,
        "after": after,
        "training": training,
        "guard": guard,
        "applied": applied,
    }
    report["charts"] = charts(run, before, after, training["losses"])
    write_report(run, report)
    print(run / "report.md")
    return 0


def _text_pairs(args, store, train_ids: list[int], run: Path) -> dict:
    """The OCR/keyword training pairs of the training photos (trainer/textpairs.py), at most ``--n`` of them, kept
    in the run folder; ``{"pairs": 0, "off": True}`` without ``--text-pairs``."""
    from . import textpairs

    if not args.text_pairs:
        return {"pairs": 0, "by_source": {}, "photos": 0, "off": True}
    saved = _read(run / "text-pairs.json")
    if saved is None:
        taken = synthetic_pairs(run / TRAIN_SYNTH_DIR)
        pairs = textpairs.text_pairs(store, train_ids, taken, args.n, args.seed)
        rows = [textpairs.training_row(pair) for pair in pairs]
        _write(run / TEXT_PAIRS_FILE, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        saved = textpairs.counts(pairs)
        _write(run / "text-pairs.json", json.dumps(saved, indent=2))
    by_source = ", ".join(f"{n} from {source}" for source, n in saved["by_source"].items() if n)
    log(
        f"text pairs: {saved['pairs']} (query → photo) from the text in and about {saved['photos']} training photos"
        + (f" ({by_source})" if by_source else "")
    )
    return saved


def _sum_costs(summaries) -> float | None:
    costs = [summary.get("cost_usd") for summary in summaries]
    return None if any(c is None for c in costs) else round(sum(costs), 6)
