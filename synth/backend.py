"""What every generator backend returns, and how it signals trouble."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SynthError


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


class BackendError(SynthError, RuntimeError):
    """This sample could not be generated (after retries); the run carries on."""

    def __init__(self, reason: str, detail: str, retries: int = 0):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retries = retries


class FatalBackendError(SynthError, RuntimeError):
    """No sample can succeed (bad key, unknown model, unreachable server): stop the run."""
