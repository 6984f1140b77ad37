"""indexer/reindex.py: a whole index re-embedded with an adapter, swapped in as a new generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indexer import IndexStore, build_index
from indexer.reindex import ADAPTERS_DIR, _copy_folder, exchange, reindex_with_adapter


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "old").write_text("old")
    (b / "new").write_text("new")
    exchange(a, b)
    assert [p.name for p in a.iterdir()] == ["new"] and [p.name for p in b.iterdir()] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # nothing parked left behind


def test_a_copy_killed_halfway_is_never_under_the_adapters_name(tmp_path, monkeypatch):
    source = tmp_path / "adapter"
    source.mkdir()
    (source / "adapter_config.json").write_text("{}")
    target = tmp_path / "index" / ADAPTERS_DIR / "adapter-1"
    # a run killed mid-copy left a partial temporary copy: it is replaced, not kept
    (target.parent / f".{target.name}.tmp").mkdir(parents=True)
    (target.parent / f".{target.name}.tmp" / "stale").write_text("half")
    _copy_folder(source, target)
    assert sorted(p.name for p in target.iterdir()) == ["adapter_config.json"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["adapter-1"]

    def dies(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("indexer.reindex.shutil.copytree", dies)
    with pytest.raises(OSError, match="disk full"):
        _copy_folder(source, tmp_path / "index" / ADAPTERS_DIR / "adapter-2")
    assert not (tmp_path / "index" / ADAPTERS_DIR / "adapter-2").exists()


def _lora(model_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import SiglipModel

    model = get_peft_model(
        SiglipModel.from_pretrained(model_dir), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(out)
    return out


def test_reindex_serves_the_adapter_from_inside_the_index(tiny_siglip_torch, tiny_siglip_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for number, colour in enumerate(("red", "green", "blue")):
        Image.new("RGB", (32, 24), colour).save(photos / f"{number}.png")
    index = tmp_path / "index"
    build_index([photos], index, tiny_siglip_torch, show_progress=False)
    with IndexStore.open(index) as store:
        before, generation = store.vectors(store.ids()), store.fingerprint
    adapter = _lora(tiny_siglip_dir, tmp_path / "run" / "adapter")

    done = reindex_with_adapter(index, str(tiny_siglip_dir), adapter, device="cpu", show_progress=False)

    kept = Path(done["adapter"])
    assert kept.parent == index.absolute() / ADAPTERS_DIR and (kept / "adapter_config.json").is_file()
    assert done["images"] == 3 and done["unreadable"] == 0
    with IndexStore.open(index) as store:
        assert store.adapter is not None and Path(store.adapter).resolve() == kept.resolve()
        assert store.fingerprint != generation
        after = store.vectors(store.ids())
    assert after.shape == before.shape and not np.allclose(after, before, atol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index", "photos", "run"]  # no sibling left behind
