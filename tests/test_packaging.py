"""pyproject.toml and requirements.txt describe the same packages, and the lean install stays lean (docs/install.md)."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEAN_NEVER = re.compile(r"^(nvidia-|ray$|playwright$|pytest|ruff$|faiss-gpu$|faiss-cpu$)")


def split(requirement: str) -> tuple[str, str, str]:
    """'faiss-cpu==1.15.1; marker  # note' -> ('faiss-cpu', '==1.15.1', 'marker'), names normalised."""
    requirement = requirement.split("#", 1)[0].strip()
    spec, _, marker = requirement.partition(";")
    match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", spec.strip())
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(3).strip(), marker.strip()


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> dict[tuple[str, str], str]:
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.split("#")[0].strip()]
    return {(name, marker): version for name, version, marker in map(split, lines)}


def test_every_base_and_extra_package_is_in_requirements_txt_with_the_same_pin():
    full = requirements()
    names = {name for name, _ in full}
    meta = project()
    wanted = list(meta["dependencies"]) + [
        r for extra, rs in meta["optional-dependencies"].items() if extra != "cpu" for r in rs
    ]
    for requirement in wanted:
        name, version, marker = split(requirement)
        assert name in names, f"{name} (pyproject.toml) is missing from requirements.txt"
        pins = {v for (n, m), v in full.items() if n == name and (m == marker or not m)}
        assert version in pins or not version, f"{name}: pyproject.toml says {version!r}, requirements.txt {pins}"


def test_the_lean_set_names_no_faiss_cuda_ray_browser_or_test_package():
    for requirement in project()["dependencies"]:
        name = split(requirement)[0]
        assert not LEAN_NEVER.match(name), f"{name} belongs in an extra, not in the base (lean) dependencies"
    extras = project()["optional-dependencies"]
    assert [split(r)[0] for r in extras["cpu"]] == ["faiss-cpu"]


def test_no_documented_install_holds_faiss_cpu_and_faiss_gpu_at_once():
    extras = project()["optional-dependencies"]
    gpu = {split(r)[0]: split(r)[2] for r in extras["gpu"]}
    assert set(gpu) == {"faiss-gpu", "faiss-cpu"}
    assert gpu["faiss-cpu"] == 'sys_platform != "linux" or platform_machine != "x86_64"'
    assert gpu["faiss-gpu"] == 'sys_platform == "linux" and platform_machine == "x86_64"'  # exact complements
    full = requirements()
    assert full[("faiss-gpu", gpu["faiss-gpu"])] == full[("faiss-cpu", gpu["faiss-cpu"])] == "==1.15.1"
    assert not [key for key in full if key[0].startswith("faiss") and key[1] not in gpu.values()]
    for name, extra in extras.items():
        if name not in ("cpu", "gpu"):
            assert not [r for r in extra if split(r)[0].startswith("faiss")], f"extra {name} names FAISS"


def test_torch_is_pinned_and_no_torchvision():
    assert "torch==2.13.0" in project()["dependencies"]
    assert requirements()[("torch", "")] == "==2.13.0"
    assert "torchvision" not in {name for name, _ in requirements()}


def test_console_commands_name_callable_mains():
    scripts = project()["scripts"]
    assert {"mme5", "mme5-index", "mme5-search", "mme5-albums", "mme5-synth", "mme5-train"} <= set(scripts)
    for command, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), command
