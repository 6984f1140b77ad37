"""mmE5's three tasks and seven query→target modality combinations (paper Table 1)."""
from __future__ import annotations

from dataclasses import dataclass

TASKS = {
    "classification": ("I->T", "IT->T"),
    "vqa": ("IT->T",),
    "retrieval": ("I->T", "IT->T", "T->IT", "T->I", "I->I", "IT->I", "IT->IT"),
}
# The paper did not publish its task mix; retrieval has by far the most combinations and rows.
DEFAULT_TASK_WEIGHTS = {"classification": 0.2, "vqa": 0.2, "retrieval": 0.6}
DATASET_NAMES = {"classification": "Classification", "vqa": "VQA", "retrieval": "Retrieval"}


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


def combo_weights(task_weights: dict[str, float]) -> dict[tuple[str, str], float]:
    """(task, combination) -> probability; combinations share their task's weight equally."""
    weights = {}
    for task, weight in task_weights.items():
        for combo in TASKS[task]:
            weights[(task, combo)] = weight / len(TASKS[task])
    return weights
