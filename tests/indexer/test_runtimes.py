"""Runtimes and the index's vector space: torch and ONNX fp32 share an index; an int8 index is its own."""

import json

import numpy as np

from indexer.__main__ import main
from indexer.store import IndexStore


def build(photos, index, model, *extra):
    for i in range(3):
        if not (photos.folder / f"{i}.jpg").exists():
            photos.jpeg(f"{i}.jpg")
    return main(["build", "--dir", str(photos.folder), "--index", str(index), "--model", str(model), "--quiet", *extra])


def search(index, *extra):
    return main(["search", "--index", str(index), "--text", "a red square", "-k", "3", "--json", *extra])


def test_an_onnx_built_index_searches_the_same_with_torch(photos, tmp_path, tiny_siglip_dir, capsys):
    index = tmp_path / "index"
    assert build(photos, index, tiny_siglip_dir) == 0  # the CPU default: ONNX Runtime
    with IndexStore.open(index) as store:
        assert store.meta["quantization"] is None
    capsys.readouterr()
    assert search(index) == 0
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
