"""Quality gates on revised data: language, copying, and near-duplicate queries."""

from __future__ import annotations

import re
import threading
import unicodedata

import numpy as np

from .configure import SampleConfig
from .errors import SynthError
from .languages import check_language
from .schema import Data

COPY_SIMILARITY = 0.8  # character-trigram Jaccard at which two texts count as the same
DUPLICATE_SIMILARITY = 0.9  # ... and at which a new query counts as a near-duplicate of an earlier one


class Rejected(SynthError, ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Kept(dict):
    """``str.translate`` table: punctuation and symbols map to None, other characters to themselves.

    Filled lazily, one ``unicodedata.category`` call per distinct character ever seen, so
    normalising is a C-speed ``translate`` instead of a Python loop over every character.
    """

    def __missing__(self, code: int):
        value = None if unicodedata.category(chr(code)).startswith(("P", "S")) else code
        self[code] = value
        return value


_KEPT = _Kept()
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form used for comparisons."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_KEPT)
    return _SPACES.sub(" ", text).strip()


def trigrams(text: str) -> frozenset[str]:
    return _trigrams_of_normalised(normalise(text))


def _trigrams_of_normalised(normalised: str) -> frozenset[str]:
    text = f" {normalised} "
    return frozenset(text[i : i + 3] for i in range(len(text) - 2))


def similarity(a: str, b: str) -> float:
    grams_a, grams_b = trigrams(a), trigrams(b)
    if not grams_a or not grams_b:
        return 0.0
    return len(grams_a & grams_b) / len(grams_a | grams_b)


def check_data(data: Data, config: SampleConfig) -> None:
    """Raise Rejected when the revised data breaks a rule the paper's quality bar implies."""
    texts = {"query": data.query, "positive": data.positive, "hard_negative": data.hard_negative}
    for field, text in texts.items():
        if text:
            problem = check_language(text, config.language)
            if problem:
                raise Rejected("wrong_language", f"{field}: {problem}")
    problem = check_language(data.instruction, "en")
    if problem:
        raise Rejected("wrong_language", f"instruction: {problem}")
    if data.query and data.positive:
        query, positive = normalise(data.query), normalise(data.positive)
        if query in positive or positive in query or similarity(data.query, data.positive) >= COPY_SIMILARITY:
            raise Rejected("copied_positive", "the query repeats the positive; the pair teaches nothing")
    if data.positive and data.hard_negative and similarity(data.positive, data.hard_negative) >= COPY_SIMILARITY:
        raise Rejected("negative_equals_positive", "the hard negative repeats the positive")


# MinHash LSH for the near-duplicate filter: 60 hash functions in 10 bands of 6. Two queries with
# trigram Jaccard J share a band with probability 1-(1-J^6)^10: 0.9995 at J = 0.9 (the threshold),
# 0.15 at J = 0.5, 1e-5 at J = 0.15; a shared band is only a candidate, confirmed by exact Jaccard.
BANDS, ROWS = 10, 6
_RNG = np.random.default_rng(20250208)  # fixed: signatures are comparable across runs and processes
_A = _RNG.integers(1, 2**63, size=(BANDS * ROWS, 1), dtype=np.uint64) | np.uint64(1)  # odd multipliers
_B = _RNG.integers(0, 2**63, size=(BANDS * ROWS, 1), dtype=np.uint64)
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


def _codes(normalised: str) -> np.ndarray:
    return np.frombuffer(f" {normalised} ".encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _mix(codes: np.ndarray) -> np.ndarray:
    """64-bit hash of each character trigram (the three code points mixed), in text order, repeats kept."""
    with np.errstate(over="ignore"):  # wrap-around is the point of these hashes
        return codes[:-2] * _MIX[0] ^ codes[1:-1] * _MIX[1] ^ codes[2:] * _MIX[2]


def gram_hashes(normalised: str) -> np.ndarray:
    """Sorted unique 64-bit hashes of the character trigrams of ``f" {normalised} "``."""
    return np.unique(_mix(_codes(normalised)))


def minhash(hashes: np.ndarray) -> np.ndarray:
    """MinHash signature (BANDS*ROWS values) of a set of trigram hashes: multiply-shift hashing."""
    with np.errstate(over="ignore"):
        return ((_A * hashes[None, :] + _B) >> np.uint64(32)).min(axis=1)


def minhash_many(normalised: list[str], chunk: int = 64) -> list[np.ndarray | None]:
    """``minhash`` of many texts with a few numpy calls per ``chunk`` texts (a resumed run re-adds 100,000s).

    Small chunks keep the (hash functions x trigrams) array in cache: 64 texts ran twice as fast as 2048."""
    signatures: list[np.ndarray | None] = []
    for start in range(0, len(normalised), chunk):
        hashes, owners = [], []
        for number, text in enumerate(normalised[start : start + chunk]):
            if text:
                mixed = _mix(_codes(text))
                hashes.append(mixed)
                owners.append(number)
        part: list[np.ndarray | None] = [None] * len(normalised[start : start + chunk])
        if hashes:
            lengths = np.fromiter((len(h) for h in hashes), dtype=np.int64, count=len(hashes))
            flat = np.concatenate(hashes)
            with np.errstate(over="ignore"):  # in place: one array of the chunk's size, not three
                values = _A * flat[None, :]
                values += _B
                values >>= np.uint64(32)
            mins = np.minimum.reduceat(values, np.cumsum(lengths) - lengths, axis=1)
            for column, number in enumerate(owners):
                part[number] = mins[:, column]
        signatures.extend(part)
    return signatures


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)


class Deduplicator:
    """Drops queries that nearly repeat an earlier accepted one (same query image, or both text-only).

    A query is a near-duplicate when its normalised text equals an earlier one's or their
    character-trigram Jaccard similarity reaches ``threshold``.  Candidates come from a MinHash
    LSH index (one dict of band hashes keyed with the query image), so a check costs a few
    dictionary look-ups plus an exact comparison with the rare candidates, whatever the number
    of accepted queries: 100,000 check in seconds (``benchmarks/bench_synth_dedup.py``),
    where comparing against every earlier query grew quadratically.
    """

    def __init__(self, threshold: float = DUPLICATE_SIMILARITY):
        self.threshold = threshold
        self._exact: set[tuple[str, str]] = set()
        self._bands: dict[tuple, list[int]] = {}
        self._texts: list[str] = []  # normalised texts, by entry number (candidates are re-checked exactly)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._exact)

    def seen(self, image: str, text: str) -> bool:
        """True if a near-duplicate was seen before; otherwise remember this one."""
        normalised = normalise(text)
        signature = minhash(_mix(_codes(normalised))) if normalised else None
        return self._check(image, normalised, signature)

    def seen_many(self, items) -> list[bool]:
        """``seen`` for many (image, text) pairs in order, hashing them in batches (resume)."""
        items = [(image, normalise(text)) for image, text in items]
        signatures = minhash_many([normalised for _, normalised in items])
        return [self._check(image, normalised, signature) for (image, normalised), signature in zip(items, signatures)]

    def _check(self, image: str, normalised: str, signature: np.ndarray | None) -> bool:
        keys = []
        if signature is not None:
            raw = signature.tobytes()
            step = ROWS * 8
            keys = [(image, band, raw[band * step : (band + 1) * step]) for band in range(BANDS)]
        with self._lock:
            if (image, normalised) in self._exact:
                return True
            checked: set[int] = set()
            grams = None
            for key in keys:
                for entry in self._bands.get(key, ()):
                    if entry in checked:
                        continue
                    checked.add(entry)
                    grams = gram_hashes(normalised) if grams is None else grams
                    if _jaccard(grams, gram_hashes(self._texts[entry])) >= self.threshold:
                        return True
            entry = len(self._texts)
            self._texts.append(normalised)
            self._exact.add((image, normalised))
            for key in keys:
                self._bands.setdefault(key, []).append(entry)
            return False
