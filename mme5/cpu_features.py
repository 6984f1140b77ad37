"""What the CPU's instruction sets offer the model: read once, in one place, into a small typed object.

Linux lists them in ``/proc/cpuinfo``'s ``flags`` line; macOS answers ``sysctl hw.optional.*``; torch says
which kernels it dispatches to (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512, ...).
``mme5.loading.choose_runtime_and_dtype`` maps these (with the model's family) to a runtime and precision.
"""

from __future__ import annotations

import functools
import logging
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# The flags worth naming beside a CPU figure, in the order they are printed.
NOTABLE = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "bf16",
    "i8mm",
    "sme",
)
# macOS sysctl names -> the Linux-style flag they mean.
_SYSCTL_FLAGS = {
    "hw.optional.avx2_0": "avx2",
    "hw.optional.fma": "fma",
    "hw.optional.avx512f": "avx512f",
    "hw.optional.avx512vnni": "avx512_vnni",
    "hw.optional.neon": "neon",
    "hw.optional.arm.FEAT_BF16": "bf16",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
    "hw.optional.arm.FEAT_SME": "sme",
}


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU's instruction-set flags (lower case, Linux names) and torch's kernel level."""

    flags: frozenset[str] = frozenset()
    torch_capability: str = ""  # torch.backends.cpu.get_cpu_capability(), e.g. "AVX512"
    machine: str = ""  # platform.machine(): x86_64, arm64, aarch64

    @property
    def bf16_matrix_units(self) -> bool:
        """Tile units that multiply bf16 matrices (Intel AMX): where bf16 runs several times fp32's rate.
        AVX512_BF16 alone (e.g. AMD Zen 4) only has bf16 dot-product vector instructions."""
        return "amx_bf16" in self.flags

    @property
    def bf16_vectors(self) -> bool:
        """bf16 arithmetic in vector instructions (AVX512_BF16, AMX, or Arm's BF16)."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16", "bf16"})

    @property
    def int8_dot(self) -> bool:
        """int8 dot-product instructions (VNNI, AMX-INT8, Arm I8MM)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8", "i8mm"})

    def summary(self) -> str:
        """The notable flags and torch's level, for a line beside any CPU figure."""
        found = [flag for flag in NOTABLE if flag in self.flags]
        capability = f"; torch kernels {self.torch_capability}" if self.torch_capability else ""
        return f"{self.machine or '?'}: {' '.join(found) or 'no vector extensions listed'}{capability}"


def parse_cpuinfo(text: str) -> frozenset[str]:
    """The ``flags`` (x86) or ``Features`` (Arm) of the first processor in a /proc/cpuinfo text."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.lower().split())
    return frozenset()


def _torch_capability() -> str:
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except (ImportError, AttributeError, RuntimeError):
        return ""


def _sysctl_flags() -> frozenset[str]:
    try:
        output = subprocess.run(
            ["sysctl", *_SYSCTL_FLAGS], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    found = set()
    for line in output.splitlines():
        name, _, value = line.partition(":")
        if value.strip() == "1" and name.strip() in _SYSCTL_FLAGS:
            found.add(_SYSCTL_FLAGS[name.strip()])
    return frozenset(found)


@functools.lru_cache(maxsize=1)
def detect() -> CpuFeatures:
    """This machine's CpuFeatures (read once per process)."""
    flags: frozenset[str] = frozenset()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            flags = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
        except OSError as error:
            logger.debug(f"mme5: could not read {cpuinfo}: {error}")
    elif platform.system() == "Darwin":
        flags = _sysctl_flags()
    return CpuFeatures(flags=flags, torch_capability=_torch_capability(), machine=platform.machine())
