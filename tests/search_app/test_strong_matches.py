"""Strong matches only: a per-query cut-off measured on a library sample keeps a planted cluster, drops the rest."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from search_app.ranking import strong_cutoff

DIM = 32


class SampleStore:
    """The two things strong_cutoff reads from an IndexStore: the searchable ids and their stored vectors."""

    def __init__(self, vectors: np.ndarray):
        self._vectors = vectors
        self.count, self.dim = len(vectors), vectors.shape[1]

    def ids(self):
        return np.arange(self.count, dtype=np.int64)

    def vectors(self, ids):
        return self._vectors[np.asarray(ids)]


def with_scores(scores: np.ndarray, rng) -> np.ndarray:
    """Unit vectors whose inner product with the query e₀ is exactly ``scores``."""
    rest = rng.normal(size=(len(scores), DIM - 1))
    rest *= (np.sqrt(1 - scores**2) / np.linalg.norm(rest, axis=1))[:, None]
    return np.hstack([scores[:, None], rest]).astype(np.float32)


def planted_trial(rng, cluster_size: int, background: int = 10_000) -> tuple[bool, float, np.ndarray, np.ndarray]:
    """Background scores ~ N(μ, σ) with μ, σ drawn per trial (each query and model has its own scale);
    the cluster sits 7–10 σ above the background's centre."""
    mu, sigma = rng.uniform(0.0, 0.4), rng.uniform(0.015, 0.06)
    back = np.clip(rng.normal(mu, sigma, background), -0.99, 0.99)
    cluster = np.clip(mu + sigma * rng.uniform(7, 10, cluster_size), -0.99, 0.99)
    vectors = with_scores(np.concatenate([cluster, back]), rng)
    order = rng.permutation(len(vectors))  # the cluster is not at the front of the library
    vectors = vectors[order]
    is_cluster = order < cluster_size
    opened = SimpleNamespace(store=SampleStore(vectors), facts={})
    query = np.zeros((1, DIM), np.float32)
    query[0, 0] = 1
    cutoff = strong_cutoff(opened, query)
    scores = vectors @ query[0]
    kept = scores >= cutoff
    return bool(np.array_equal(kept, is_cluster)), cutoff, scores[is_cluster], scores[~is_cluster]


@pytest.mark.parametrize("cluster_size", [1, 5, 50, 200, 500])
def test_a_planted_cluster_is_kept_and_the_background_dropped_in_95_percent_of_trials(cluster_size):
    rng = np.random.default_rng(cluster_size)
    trials = [planted_trial(rng, cluster_size)[0] for _ in range(40)]
    assert np.mean(trials) >= 0.95, f"{cluster_size}: {np.mean(trials):.0%} of trials exact"


def test_a_fixed_score_would_fail_where_the_adaptive_cut_off_holds():
    """Across trials the background's own level moves, so no single score separates them all."""
    rng = np.random.default_rng(7)
    results = [planted_trial(rng, int(size)) for size in rng.integers(1, 501, 40)]
    assert np.mean([exact for exact, *_ in results]) >= 0.95
    lowest_cluster = min(float(cluster.min()) for _, _, cluster, _ in results)
    highest_background = max(float(back.max()) for _, _, _, back in results)
    assert highest_background > lowest_cluster  # any fixed threshold misclassifies some trial


def test_the_engine_reports_strong_and_hidden_counts(engine):
    everything = engine.search_text("a red photo", k=50)
    strong = engine.search_text("a red photo", k=50, strong_only=True)
    cutoff = strong.cutoff
    assert strong.strong == len(strong.results) and all(r.score >= cutoff for r in strong.results)
    assert [r.image_id for r in strong.results] == [r.image_id for r in everything.results if r.score >= cutoff]
    assert strong.hidden == engine.stats()["images"] - strong.strong
    payload = strong.to_json()["strong_matches"]
    assert payload["strong"] == strong.strong and payload["hidden"] == strong.hidden
    assert everything.strong is None and "strong_matches" not in everything.to_json()


def test_strong_matches_of_the_photo_itself_include_it(engine, library):
    """An image query finds its own photo (score ≈ 1) far above the rest of the library."""
    page = engine.search_image(str(library / "2024/green.jpg"), k=10, strong_only=True)
    assert page.results and page.results[0].relpath == "2024/green.jpg"
