"""The CPU's runtime and precision, chosen from its instruction sets: bf16 only where it is one vector space
with fp32 and faster; a CPU without bf16 matrix units gets exactly the previous default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mme5 import load_embedder, registry
from mme5.cpu_features import CpuFeatures, parse_cpuinfo
from mme5.loading import choose_runtime, choose_runtime_and_dtype
from mme5.onnx_runtime import onnxruntime_available

CPU = torch.device("cpu")
AVX2 = CpuFeatures(flags=frozenset({"avx2", "fma"}), torch_capability="AVX2", machine="x86_64")
# This development machine's kind (AMD Zen 4): bf16 dot products in AVX-512, no matrix units.
ZEN4 = CpuFeatures(flags=frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}), torch_capability="AVX512")
SAPPHIRE_RAPIDS = CpuFeatures(
    flags=frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}),
    torch_capability="AVX512",
)
AGREEMENT = 0.999  # least cosine between a bf16 and an fp32 vector for bf16 to count as the same vector space


def test_cpuinfo_flags_are_read_from_the_first_processor():
    text = "processor\t: 0\nflags\t\t: fpu AVX2 avx512_bf16 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    features = CpuFeatures(flags=parse_cpuinfo(text))
    assert features.flags == {"fpu", "avx2", "avx512_bf16", "amx_bf16"}
    assert features.bf16_matrix_units and features.bf16_vectors
    arm = CpuFeatures(flags=parse_cpuinfo("Features\t: fp asimd bf16 i8mm\n"))
    assert arm.bf16_vectors and arm.int8_dot and not arm.bf16_matrix_units
    assert parse_cpuinfo("no flags here") == frozenset()


def test_summary_names_the_instruction_sets_beside_a_figure():
    assert SAPPHIRE_RAPIDS.summary() == "?: avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8; " + (
        "torch kernels AVX512"
    )
    assert "no vector extensions" in CpuFeatures().summary()


@pytest.mark.parametrize("family", sorted(registry.BACKBONES))
@pytest.mark.parametrize("cpu", [AVX2, ZEN4, CpuFeatures()], ids=["avx2", "avx512_bf16-no-amx", "unknown"])
def test_a_cpu_without_bf16_matrix_units_keeps_the_previous_default(family, cpu):
    spec = registry.by_family(family)
    before = (choose_runtime(spec, None, CPU), torch.float32)  # the rule before CPU features were read
    assert choose_runtime_and_dtype(spec, None, None, CPU, cpu=cpu) == before
    assert choose_runtime_and_dtype(spec, "auto", None, CPU, cpu=cpu) == before
    assert choose_runtime_and_dtype(spec, "torch", None, CPU, cpu=cpu) == ("torch", torch.float32)


@pytest.mark.parametrize("family", sorted(registry.BACKBONES))
def test_bf16_matrix_units_run_the_family_in_bf16_when_asked_and_its_vectors_agree(family):
    spec = registry.by_family(family)
    assert spec.cpu_bf16  # measured below: every family's bf16 vectors agree with fp32
    default = (choose_runtime(spec, None, CPU), torch.float32)
    assert choose_runtime_and_dtype(spec, None, None, CPU, cpu=SAPPHIRE_RAPIDS, cpu_bf16=False) == default
    assert choose_runtime_and_dtype(spec, None, None, CPU, cpu=SAPPHIRE_RAPIDS, cpu_bf16=True) == (
        "torch",
        torch.bfloat16,
    )
    assert choose_runtime_and_dtype(spec, "auto", None, CPU, cpu=SAPPHIRE_RAPIDS, cpu_bf16=True) == (
        "torch",
        torch.bfloat16,
    )
    assert choose_runtime_and_dtype(spec, "torch", None, CPU, cpu=SAPPHIRE_RAPIDS, cpu_bf16=True) == (
        "torch",
        torch.float32,
    )
    # opted in on a CPU without bf16 matrix units: nothing changes
    assert choose_runtime_and_dtype(spec, None, None, CPU, cpu=ZEN4, cpu_bf16=True) == default


def test_a_family_whose_bf16_vectors_disagree_never_gets_bf16():
    from dataclasses import replace

    spec = replace(registry.by_family("dual"), cpu_bf16=False)
    assert choose_runtime_and_dtype(spec, None, None, CPU, cpu=SAPPHIRE_RAPIDS, cpu_bf16=True) == (
        choose_runtime(spec, None, CPU),
        torch.float32,
    )


def test_what_the_user_asked_for_wins_over_the_cpu():
    dual = registry.by_family("dual")
    if onnxruntime_available():
        assert choose_runtime_and_dtype(dual, "onnx", None, CPU, cpu=SAPPHIRE_RAPIDS) == ("onnx", torch.float32)
        assert choose_runtime_and_dtype(dual, None, torch.float32, CPU, cpu=SAPPHIRE_RAPIDS) == (
            "onnx",
            torch.float32,
        )
    assert choose_runtime_and_dtype(dual, None, torch.bfloat16, CPU, cpu=AVX2) == ("torch", torch.bfloat16)
    assert choose_runtime_and_dtype(dual, "torch", torch.float32, CPU, cpu=SAPPHIRE_RAPIDS) == ("torch", torch.float32)
    cuda = torch.device("cuda")
    assert choose_runtime_and_dtype(dual, None, None, cuda, cpu=SAPPHIRE_RAPIDS) == ("torch", torch.bfloat16)


def test_load_embedder_follows_the_rule_for_the_cpu_it_finds(tiny_siglip_dir, monkeypatch):
    """The CPU is injected (mme5.loading reads it through detect_cpu): this machine has no AMX."""
    monkeypatch.setattr("mme5.loading.detect_cpu", lambda: SAPPHIRE_RAPIDS)
    assert load_embedder(str(tiny_siglip_dir), device="cpu").backbone.dtype == torch.float32  # not opted in
    monkeypatch.setenv("MME5_CPU_BF16", "1")  # the test is about this opt-in
    fast = load_embedder(str(tiny_siglip_dir), device="cpu")
    assert (fast.runtime, fast.backbone.dtype) == ("torch", torch.bfloat16)
    assert next(fast.backbone.model.parameters()).dtype == torch.bfloat16
    monkeypatch.setattr("mme5.loading.detect_cpu", lambda: AVX2)
    plain = load_embedder(str(tiny_siglip_dir), device="cpu")
    assert plain.runtime == ("onnx" if onnxruntime_available() else "torch")
    assert fast.fingerprint == plain.fingerprint  # one vector space: the identity records no machine's choice


# -- agreement: bf16 vectors are the fp32 ones (the published-layout replicas and the tiny models) ---------------
def _inputs():
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        base = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3) * (i + 1) / 4  # smooth, like a photo
        noisy = base + rng.normal(0, 20, base.shape)
        images.append(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    texts = ["a dog on the beach at sunset", "zwei Katzen schlafen auf dem Sofa", "un vélo rouge", "夜の東京タワー"]
    return images, texts


def _min_agreement(folder) -> tuple[float, float]:
    images, texts = _inputs()
    full = load_embedder(str(folder), device="cpu", runtime="torch", dtype=torch.float32)
    half = load_embedder(str(folder), device="cpu", runtime="torch", dtype=torch.bfloat16)
    assert half.backbone.dtype == torch.bfloat16
    agreement = []
    for encode in ("encode_images", "encode_texts"):
        inputs = images if encode == "encode_images" else texts
        a, b = getattr(full, encode)(inputs), getattr(half, encode)(inputs)
        agreement.append(float((a * b).sum(axis=1).min()))
    return agreement[0], agreement[1]


@pytest.mark.parametrize(
    "model", ["tiny-mllama", "tiny-siglip", "replica-siglip-multilingual", "replica-siglip2", "replica-mllama"]
)
def test_bf16_vectors_agree_with_fp32(model, request):
    if model.startswith("tiny-"):
        folder = request.getfixturevalue(f"tiny_{model.removeprefix('tiny-')}_dir")
    else:
        folder = request.getfixturevalue("replica_dirs")[model.removeprefix("replica-")]
    image_min, text_min = _min_agreement(folder)
    print(f"{model}: least cosine bf16 vs fp32: images {image_min:.5f}, texts {text_min:.5f}")
    family = "mllama" if "mllama" in model else "dual"
    if registry.by_family(family).cpu_bf16:
        assert image_min >= AGREEMENT and text_min >= AGREEMENT, (model, image_min, text_min)


def test_macos_sysctl_answers_become_the_same_flags(monkeypatch):
    """macOS has no /proc/cpuinfo: `sysctl hw.optional.*` answers name the features (1 = present)."""
    import subprocess

    from mme5 import cpu_features

    answer = "hw.optional.neon: 1\nhw.optional.arm.FEAT_BF16: 1\nhw.optional.arm.FEAT_I8MM: 0\nhw.optional.bogus: 1\n"
    monkeypatch.setattr(
        cpu_features.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=answer)
    )
    assert cpu_features._sysctl_flags() == {"neon", "bf16"}
    features = CpuFeatures(flags=cpu_features._sysctl_flags(), machine="arm64")
    assert features.bf16_vectors and not features.bf16_matrix_units  # Apple's matrix units are not chosen (untested)


def test_detect_reads_this_machine_once():
    from pathlib import Path

    from mme5.cpu_features import detect

    found = detect()
    assert found is detect()  # read once per process
    assert found.torch_capability == str(torch.backends.cpu.get_cpu_capability())
    if Path("/proc/cpuinfo").is_file():
        assert found.flags == parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
