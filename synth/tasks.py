"""mmE5's three tasks and seven query→target modality combinations (paper Table 1)."""

from __future__ import annotations

from dataclasses import dataclass

from mme5.registry import QueryKind

from .errors import SpecError
from .weights import normalise, parse_weight

TASKS = {
    "classification": ("I->T", "IT->T"),
    "vqa": ("IT->T",),
    "retrieval": ("I->T", "IT->T", "T->IT", "T->I", "I->I", "IT->I", "IT->IT"),
}
# The paper did not publish its task mix; retrieval has by far the most combinations and rows.
DEFAULT_TASK_WEIGHTS = {"classification": 0.2, "vqa": 0.2, "retrieval": 0.6}
DATASET_NAMES = {"classification": "Classification", "vqa": "VQA", "retrieval": "Retrieval"}
# The combinations that are a photo search in the app (a photo alone as the target), and the app's kind of query.
SEARCH_KINDS = {"T->I": QueryKind.TEXT, "I->I": QueryKind.IMAGE, "IT->I": QueryKind.COMPOSED}


@dataclass(frozen=True)
class Combo:
    """A modality combination such as ``IT->I``: which sides carry an image and a text."""

    name: str

    @property
    def query(self) -> str:
        return self.name.split("->")[0]

    @property
    def target(self) -> str:
        return self.name.split("->")[1]

    @property
    def query_image(self) -> bool:
        return "I" in self.query

    @property
    def query_text(self) -> bool:
        return "T" in self.query

    @property
    def target_image(self) -> bool:
        return "I" in self.target

    @property
    def target_text(self) -> bool:
        return "T" in self.target

    @property
    def query_kind(self) -> QueryKind | None:
        """The app's kind of search query this combination is, None when its target is not a photo alone."""
        return SEARCH_KINDS.get(self.name)


def combo_weights(task_weights: dict[str, float]) -> dict[tuple[str, str], float]:
    """(task, combination) -> probability; combinations share their task's weight equally."""
    weights = {}
    for task, weight in task_weights.items():
        for combo in TASKS[task]:
            weights[(task, combo)] = weight / len(TASKS[task])
    return weights


def parse_tasks(spec: str) -> dict[tuple[str, str], float]:
    """``"retrieval=0.6,vqa,classification:I->T=0.5"`` -> normalised (task, combination) weights.

    A bare task spreads its weight over its combinations; ``task:COMBO`` weights one combination.
    Raises ValueError naming the bad entry and the valid choices.
    """
    weights: dict[tuple[str, str], float] = {}
    for part in (piece.strip() for piece in spec.split(",") if piece.strip()):
        name, _, value = part.partition("=")  # combinations hold "->", never "="
        task, _, combo = name.strip().partition(":")
        if task not in TASKS:
            raise SpecError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
        if combo and combo not in TASKS[task]:
            raise SpecError(f"{task} has no combination {combo!r}; valid: {', '.join(TASKS[task])}")
        weight = parse_weight(value, name, "task")
        for one in [combo] if combo else TASKS[task]:
            weights[(task, one)] = weights.get((task, one), 0.0) + weight / (1 if combo else len(TASKS[task]))
    return normalise(weights, spec, "task")
