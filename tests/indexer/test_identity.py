"""An index knows its model by content: the path it was given by does not matter, the weights and adapter do."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from .conftest import REPO

HUB_ID = "google/siglip-base-patch16-256-multilingual"


def info(index) -> dict:
    from indexer import IndexStore

    with IndexStore.open(index) as store:
        return store.info()


def search(cli, index, *model, **kwargs):
    return cli("search", "--index", index, *model, "--text", "un perro", "-k", "3", "--json", **kwargs)


@pytest.mark.slow  # CLI subprocesses: 110-215 s measured at load average ~10 on 2 cores
def test_relative_path_moved_folder_and_hub_id_all_open_the_same_index(
    cli, photos, replica_dirs, tmp_path, fill_hub_cache
):
    from indexer import IndexMismatchError, IndexStore
    from mme5 import load_embedder

    work = tmp_path / "work"
    shutil.copytree(replica_dirs["siglip-multilingual"], work / "models" / "ml")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        photos.jpeg(name)
    env = {"MME5_CACHE_DIR": str(tmp_path / "cache")}
    relative = os.path.join(".", os.path.relpath(work / "models" / "ml", REPO))  # typed from the repo root
    built = cli("build", "--dir", photos.folder, "--index", work / "idx", "--model", relative, "--quiet", env=env)
    assert built.returncode == 0, built.stderr
    recorded = info(work / "idx")
    assert recorded["model_id"] == str((work / "models" / "ml").resolve())  # where to find it from any folder
    assert recorded["identity"]["model"].startswith("sha256:") and recorded["fingerprint"].startswith("v2|")

    moved = tmp_path / "elsewhere" / "multilingual"
    moved.parent.mkdir()
    (work / "models" / "ml").rename(moved)
    after_move = search(cli, work / "idx", "--model", moved, env=env)
    assert after_move.returncode == 0, after_move.stderr
    assert len(json.loads(after_move.stdout)["results"]) == 3
    assert info(work / "idx")["model_id"] == str(moved)  # the stale location was replaced
    photos.jpeg("d.jpg")
    rebuilt = cli("build", "--index", work / "idx", "--quiet", "--json", env=env)  # the index's own model, moved
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["added"] == 1

    hub = tmp_path / "hub"
    fill_hub_cache(hub, HUB_ID, moved, commit="1" * 40)
    by_hub_id = search(cli, work / "idx", "--model", HUB_ID, env={**env, "HF_HUB_CACHE": str(hub)})
    assert by_hub_id.returncode == 0, by_hub_id.stderr
    assert len(json.loads(by_hub_id.stdout)["results"]) == 3
    assert info(work / "idx")["fingerprint"] == recorded["fingerprint"]

    other = load_embedder(str(replica_dirs["siglip2"]), device="cpu")  # same family and dim, other weights
    with IndexStore.open(work / "idx") as store, pytest.raises(IndexMismatchError, match="they differ in: model"):
        store.check_embedder(other)


def lora(model_dir: Path, out: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import SiglipModel

    model = get_peft_model(
        SiglipModel.from_pretrained(model_dir), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(out)
    return out


@pytest.mark.slow  # CLI subprocesses: 110-215 s measured at load average ~10 on 2 cores
def test_a_different_adapter_is_refused_the_same_adapter_elsewhere_is_not(cli, photos, replica_dirs, tmp_path):
    model = replica_dirs["siglip-multilingual"]
    first, second = lora(model, tmp_path / "lora-a", seed=1), lora(model, tmp_path / "lora-b", seed=2)
    photos.jpeg("a.jpg")
    photos.jpeg("b.jpg")
    index = tmp_path / "idx"
    env = {"MME5_CACHE_DIR": str(tmp_path / "cache")}
    built = cli(
        "build", "--dir", photos.folder, "--index", index, "--model", model, "--adapter", first, "--quiet", env=env
    )
    assert built.returncode == 0, built.stderr
    different = search(cli, index, "--model", model, "--adapter", second, env=env)
    assert different.returncode == 1
    assert "cannot be mixed" in different.stderr and "they differ in: adapter" in different.stderr
    assert "Traceback" not in different.stderr

    from indexer import open_index

    copy = shutil.copytree(first, tmp_path / "copied" / "adapter")  # same adapter, another folder: accepted
    embedder, store = open_index(index, model=str(model), adapter=str(copy), device="cpu")
    store.close()
    assert embedder.identity["adapter"] == info(index)["identity"]["adapter"]


def test_an_index_from_before_content_identities_opens_and_is_migrated(photos, replica_dirs, tmp_path, monkeypatch):
    """Old meta named the model by path ("./m|dual|32|<prompts>"): accepted by path as before, or by content."""
    from indexer import IndexMismatchError, IndexStore, build_index
    from indexer.catalog import CATALOG_FILE, Catalog
    from mme5 import load_embedder, prompts

    monkeypatch.setenv("MME5_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(replica_dirs["siglip-multilingual"], tmp_path / "m")
    photos.jpeg("a.jpg")
    embedder = load_embedder("./m", device="cpu")
    index = tmp_path / "idx"
    build_index([photos.folder], index, embedder, show_progress=False)

    def make_old(model_id: str) -> None:
        from sqlalchemy import delete

        from indexer.catalog import Meta

        catalog = Catalog(index / CATALOG_FILE)
        with catalog.session() as session:
            session.execute(delete(Meta).where(Meta.key == "identity"))
            Catalog.set_meta(session, model_id=model_id, fingerprint=f"{model_id}|dual|32|{prompts.PROMPT_VERSION}")
            session.commit()
        catalog.close()

    make_old("./m")  # the README's relative path, as typed
    with IndexStore.open(index) as store:
        assert "identity" not in store.meta
        store.check_embedder(embedder)  # same path as typed: accepted, as before
    with IndexStore.open(index) as store:
        assert store.fingerprint == embedder.fingerprint and store.meta["identity"] == embedder.identity

    make_old(str(tmp_path / "m"))
    shutil.copytree(tmp_path / "m", tmp_path / "copy")
    with IndexStore.open(index) as store:
        store.check_embedder(load_embedder(str(tmp_path / "copy"), device="cpu"))  # another folder, same content
        assert store.fingerprint == embedder.fingerprint

    make_old(str(tmp_path / "m"))
    other = load_embedder(str(replica_dirs["siglip2"]), device="cpu")
    with IndexStore.open(index) as store, pytest.raises(IndexMismatchError, match="cannot be mixed"):
        store.check_embedder(other)
