"""Stage 1 over a real index: determinism, neighbour windows, and the configured distribution."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from synth.configure import Configurator
from synth.languages import default_weights, parse_weights
from synth.pool import ImagePool, PoolError
from synth.tasks import DEFAULT_TASK_WEIGHTS, TASKS, combo_weights
from .synth_testing import assert_matches


@pytest.fixture(scope="module")
def pool(index_dir):
    from indexer import IndexStore

    store = IndexStore.open(index_dir)
    yield ImagePool(store)
    store.close()


def test_same_seed_same_samples_other_seed_other_samples(pool):
    weights = combo_weights(DEFAULT_TASK_WEIGHTS)
    first = Configurator(weights, default_weights(), pool, seed=7)
    again = Configurator(weights, default_weights(), pool, seed=7)
    other = Configurator(weights, default_weights(), pool, seed=8)
    assert [first(i) for i in range(50)] == [again(i) for i in range(50)]
    assert [first(i) for i in range(50)] != [other(i) for i in range(50)]
    assert first(3).sample_id == "s7-00000003"


def test_images_follow_the_combination_and_neighbour_windows(pool):
    configurator = Configurator(
        combo_weights(DEFAULT_TASK_WEIGHTS), {"en": 1.0}, pool, seed=1, positive_ranks=(1, 2), negative_ranks=(10, 12)
    )
    store = pool.store
    seen = Counter()
    for index in range(300):
        config = configurator(index)
        combo = config.combo
        seen[combo.name] += 1
        assert (config.query_image is not None) == combo.query_image
        assert (config.pos_image is not None) == (combo.target_image or not combo.query_image)
        if config.pos_image and config.neg_image:
            anchor = config.query_image or config.pos_image
            ids = {record.path: record.id for record in store.records(pool.ids)}
            _, ranked = store.search(store.vectors([ids[anchor.path]]), len(pool.ids))
            order = [int(i) for i in ranked[0] if i != ids[anchor.path]]
            assert 10 <= order.index(ids[config.neg_image.path]) + 1 <= 12
            if config.query_image:
                assert 1 <= order.index(ids[config.pos_image.path]) + 1 <= 2
            for image in (config.query_image, config.pos_image, config.neg_image):
                if image:
                    assert not image.relpath.startswith("/") and image.path.endswith(image.relpath)
    assert set(seen) == set(TASKS["retrieval"])


def test_task_combination_and_language_distribution_follow_the_weights(pool):
    task_weights = parse_weights("retrieval=0.5,vqa=0.3,classification=0.2", {t: t for t in TASKS}, "task")
    languages = parse_weights("en=5,de=2,fr=2,ja=1", {"en": "", "de": "", "fr": "", "ja": ""}, "language")
    configurator = Configurator(combo_weights(task_weights), languages, pool, seed=3)
    configs = [configurator(index) for index in range(3000)]
    assert_matches(Counter(config.language for config in configs), languages)
    assert_matches(Counter(config.task for config in configs), task_weights)
    retrieval = Counter(config.combo.name for config in configs if config.task == "retrieval")
    assert_matches(retrieval, {combo: 1 / 7 for combo in TASKS["retrieval"]})


def test_default_languages_are_93_with_english_largest():
    weights = default_weights()
    assert len(weights) == 93 and abs(sum(weights.values()) - 1) < 1e-9
    assert max(weights, key=weights.get) == "en"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("en=1,xx=2", "unknown language 'xx'"),
        ("en=abc", "not a number"),
        ("en=0", "sum to zero"),
        ("en=-1", "negative"),
    ],
)
def test_bad_weight_specs_are_explained(spec, message):
    from synth.languages import NAMES

    with pytest.raises(ValueError, match=message):
        parse_weights(spec, NAMES, "language")


def test_a_tiny_index_never_pairs_an_image_with_itself(tmp_path, tiny_siglip):
    from indexer import IndexStore, build_index

    from .synth_testing import draw_photo

    (tmp_path / "few").mkdir()
    for seed in range(2):
        draw_photo(tmp_path / "few" / f"{seed}.jpg", seed=seed)
    build_index([tmp_path / "few"], tmp_path / "index", tiny_siglip, show_progress=False)
    with IndexStore.open(tmp_path / "index") as store, pytest.raises(PoolError, match="at least 3"):
        ImagePool(store)
    draw_photo(tmp_path / "few" / "2.jpg", seed=2)
    draw_photo(tmp_path / "few" / "copy.jpg", seed=2)  # byte-identical to 2.jpg: never its own neighbour
    build_index([tmp_path / "few"], tmp_path / "index", tiny_siglip, show_progress=False)
    with IndexStore.open(tmp_path / "index") as store:
        configurator = Configurator(combo_weights({"retrieval": 1.0}), {"en": 1.0}, ImagePool(store), seed=0)
        for index in range(100):  # windows far beyond the pool: clamped, yet three distinct images
            config = configurator(index)
            paths = [image.path for _, image in config.images]
            hashes = {Path(path).read_bytes() for path in paths}
            assert len(hashes) == len(paths), config


def test_task_specs_pick_tasks_or_single_combinations():
    from synth.tasks import parse_tasks

    assert parse_tasks("retrieval=0.6,vqa=0.2,classification=0.2") == pytest.approx(combo_weights(DEFAULT_TASK_WEIGHTS))
    assert parse_tasks("retrieval:T->I=3,vqa") == pytest.approx({("retrieval", "T->I"): 0.75, ("vqa", "IT->T"): 0.25})
    with pytest.raises(ValueError, match="retrieval has no combination 'I->IT'; valid: I->T"):
        parse_tasks("retrieval:I->IT")
    with pytest.raises(ValueError, match="unknown task 'captioning'"):
        parse_tasks("captioning")


def test_photo_search_combinations_map_to_the_apps_query_kinds():
    from mme5.registry import QueryKind
    from synth.tasks import Combo

    kinds = {combo: Combo(combo).query_kind for combos in TASKS.values() for combo in combos}
    assert kinds == {
        "I->T": None,
        "IT->T": None,
        "T->IT": None,
        "IT->IT": None,
        "T->I": QueryKind.TEXT,
        "I->I": QueryKind.IMAGE,
        "IT->I": QueryKind.COMPOSED,
    }
    for combo, kind in kinds.items():  # the sides agree with what the kind needs
        if kind is not None:
            assert (Combo(combo).query_text, Combo(combo).query_image) == (kind.needs_text, kind.needs_image)
    assert Combo("nonsense").query_kind is None  # a hostile modality in a run folder is no photo search
