"""Runtimes and the index's vector space: torch and ONNX fp32 share an index; an int8 index is its own."""

import json

import numpy as np

from indexer.__main__ import main
from indexer.store import IndexStore
from mme5.cpu_features import CpuFeatures


def build(photos, index, model, *extra):
    for i in range(3):
        if not (photos.folder / f"{i}.jpg").exists():
            photos.jpeg(f"{i}.jpg")
    return main(["build", "--dir", str(photos.folder), "--index", str(index), "--model", str(model), "--quiet", *extra])


def search(index, *extra):
    return main(["search", "--index", str(index), "--text", "a red square", "-k", "3", "--json", *extra])


def test_an_onnx_built_index_searches_the_same_with_torch(photos, tmp_path, tiny_siglip_dir, capsys):
    index = tmp_path / "index"
    # ONNX named: the CPU default, as long as no one opts in to torch bf16 on a CPU with AMX (MME5_CPU_BF16)
    assert build(photos, index, tiny_siglip_dir, "--runtime", "onnx") == 0
    with IndexStore.open(index) as store:
        assert store.meta["quantization"] is None
    capsys.readouterr()
    assert search(index, "--runtime", "onnx") == 0
    default = json.loads(capsys.readouterr().out)["results"]
    assert search(index, "--runtime", "torch") == 0
    with_torch = json.loads(capsys.readouterr().out)["results"]
    assert [hit["path"] for hit in default] == [hit["path"] for hit in with_torch]
    np.testing.assert_allclose([hit["score"] for hit in default], [hit["score"] for hit in with_torch], atol=1e-4)
    photos.jpeg("3.jpg")
    assert main(["build", "--index", str(index), "--runtime", "torch", "--quiet"]) == 0  # same space: adds
    assert capsys.readouterr().out.startswith("added 1,")


def test_an_int8_index_is_another_vector_space_and_remembers_its_runtime(photos, tmp_path, tiny_siglip_dir, capsys):
    index = tmp_path / "int8"
    assert build(photos, index, tiny_siglip_dir, "--runtime", "onnx-int8") == 0
    with IndexStore.open(index) as store:
        assert store.meta["quantization"] == "int8" and "int8" in store.fingerprint
    capsys.readouterr()
    assert search(index) == 0  # no --runtime: the index's own (int8)
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    photos.jpeg("3.jpg")
    assert main(["build", "--index", str(index), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("added 1,")
    assert search(index, "--runtime", "onnx") == 1  # fp32 vectors cannot be mixed with int8 ones
    assert "int8-quantised" in capsys.readouterr().err
    assert build(photos, index, tiny_siglip_dir, "--runtime", "torch") == 1
    assert "cannot be mixed" in capsys.readouterr().err


AMX = CpuFeatures(flags=frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}), machine="x86_64")
AVX2 = CpuFeatures(flags=frozenset({"avx2", "fma"}), machine="x86_64")


def test_bf16_and_fp32_machines_share_one_index_both_ways(photos, tmp_path, tiny_siglip_dir, capsys, monkeypatch):
    """An index built on a CPU with AMX (torch bf16) searches and grows from one without (ONNX fp32) and back,
    without a rebuild: the identity records the family of precision (full vs int8), not the machine's choice.
    The CPU is injected through mme5.loading.detect_cpu (this machine has no AMX)."""
    monkeypatch.setattr("mme5.loading.detect_cpu", lambda: AVX2)
    monkeypatch.setenv("MME5_CPU_BF16", "1")  # the test is about the opt-in bf16 path (off by default)
    before = tmp_path / "fp32"  # built as every index before CPU features were read: ONNX fp32
    assert build(photos, before, tiny_siglip_dir) == 0
    with IndexStore.open(before) as store:
        recorded = store.fingerprint
    assert recorded.startswith("v2|adapter=-|dim=") and recorded.endswith("|quantization=-")  # the existing format
    assert "dtype" not in recorded and "bf16" not in recorded
    capsys.readouterr()
    assert search(before) == 0
    fp32_hits = json.loads(capsys.readouterr().out)["results"]

    monkeypatch.setattr("mme5.loading.detect_cpu", lambda: AMX)
    assert search(before) == 0  # the AMX machine runs torch bf16 on the fp32-built index
    bf16_hits = json.loads(capsys.readouterr().out)["results"]
    assert [hit["path"] for hit in bf16_hits] == [hit["path"] for hit in fp32_hits]
    np.testing.assert_allclose([h["score"] for h in bf16_hits], [h["score"] for h in fp32_hits], atol=5e-3)
    photos.jpeg("3.jpg")
    assert main(["build", "--index", str(before), "--quiet"]) == 0  # same space: adds, no rebuild
    assert capsys.readouterr().out.startswith("added 1,")

    after = tmp_path / "bf16"
    assert build(photos, after, tiny_siglip_dir) == 0  # built in bf16 on the AMX machine
    with IndexStore.open(after) as store:
        assert store.fingerprint == recorded and store.meta["quantization"] is None
    monkeypatch.setattr("mme5.loading.detect_cpu", lambda: AVX2)
    capsys.readouterr()
    assert search(after) == 0  # and searched from the fp32 machine
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
