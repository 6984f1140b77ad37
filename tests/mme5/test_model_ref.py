"""One answer to "is this a local folder or a Hub id?" (mme5.ModelRef), and every caller giving that answer.

Before ModelRef the loader (``count("/") > 1``), the identity code (``!= 1``), the index's space check, publish
and the trainer's data reader each guessed with their own rule; these cases are where they disagreed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mme5.errors import ModelLoadError
from mme5.model_ref import ModelRef, ModelRefError


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dot_slash_is_a_local_path_found_or_not(in_tmp):
    missing = ModelRef.parse("./a/b")
    assert missing.is_local and missing.canonical == "a/b"  # as typed: there is nothing to resolve
    (in_tmp / "a" / "b").mkdir(parents=True)
    found = ModelRef.parse("./a/b")
    assert found.is_local and found.canonical == str((in_tmp / "a" / "b").resolve())


def test_org_name_is_the_local_folder_when_one_exists_else_a_hub_id(in_tmp):
    assert ModelRef.parse("a/b").is_hub and ModelRef.parse("a/b").canonical == "a/b"
    (in_tmp / "a" / "b").mkdir(parents=True)
    local = ModelRef.parse("a/b")
    assert local.is_local and local.path == (in_tmp / "a" / "b").resolve()


def test_explicit_prefixes_say_which_whatever_the_folders(in_tmp):
    (in_tmp / "org" / "name").mkdir(parents=True)
    hub = ModelRef.parse("hf-hub:org/name")
    assert hub.is_hub and hub.canonical == "org/name" and str(hub) == "org/name"
    local = ModelRef.parse("local-dir:models")  # a bare name, which alone is neither
    assert local.is_local and local.canonical == "models"
    with pytest.raises(ModelRefError, match="expected a Hugging Face Hub id such as ORG/NAME"):
        ModelRef.parse("hf-hub:org/name/extra")
    with pytest.raises(ModelRefError, match="give a folder after local-dir:"):
        ModelRef.parse("local-dir:")


def test_absolute_home_and_deep_paths_are_local(in_tmp, monkeypatch):
    monkeypatch.setenv("HOME", str(in_tmp))
    (in_tmp / "models" / "x").mkdir(parents=True)
    assert ModelRef.parse(str(in_tmp / "models" / "x")).canonical == str((in_tmp / "models" / "x").resolve())
    home = ModelRef.parse("~/models/x")
    assert home.is_local and home.canonical == str((in_tmp / "models" / "x").resolve())
    assert ModelRef.parse("~/not-there").canonical == str(in_tmp / "not-there")  # ~ expanded, even when missing
    assert ModelRef.parse("a/b/c").is_local  # two slashes: never a Hub id


def test_windows_style_paths_are_local_not_hub_ids(in_tmp):
    for text in ("C:\\models\\x", "C:/models/x", "models\\x", "\\\\server\\share\\x"):
        assert ModelRef.parse(text).is_local, text


@pytest.mark.parametrize("text", ["", "gpt2", "org/na me", "org/"])
def test_neither_a_path_nor_a_hub_id_is_a_sentence(in_tmp, text):
    with pytest.raises(ModelRefError, match="ORG/NAME") as caught:
        ModelRef.parse(text)
    assert isinstance(caught.value, ValueError)  # the app's handlers show a ValueError's sentence


def test_canonical_of_keeps_names_and_none():
    assert ModelRef.canonical_of(None) is None
    assert ModelRef.canonical_of("in-memory-model") == "in-memory-model"
    assert ModelRef.canonical_of("hf-hub:org/name") == "org/name"


# -- the callers agree --------------------------------------------------------------------------------
def test_the_loader_says_a_bare_name_is_neither(in_tmp):
    from mme5.loading import _resolve

    with pytest.raises(ModelLoadError, match="not a Hugging Face Hub id of the form ORG/NAME"):
        _resolve("gpt2", None)  # the loader used to send this to the Hub (and say "offline")


def test_the_loader_says_a_missing_windows_folder_is_missing(in_tmp):
    from mme5.loading import _resolve

    with pytest.raises(ModelLoadError, match=r"model folder not found"):
        _resolve("C:\\models\\x", None)  # the loader used to ask the Hub for it


def test_the_loader_reads_a_local_dir_prefixed_folder(in_tmp, tiny_siglip_dir):
    from mme5.loading import _resolve

    source, config = _resolve(f"local-dir:{tiny_siglip_dir}", None)
    assert Path(source) == Path(tiny_siglip_dir).resolve() and config.model_type == "siglip"


def test_identity_and_the_space_check_use_the_same_answer(in_tmp):
    from indexer.space import _is_path
    from mme5.identity import locate_model

    (in_tmp / "org" / "name").mkdir(parents=True)
    assert locate_model("org/name") == (in_tmp / "org" / "name").resolve()
    assert locate_model("./a/b") is None and locate_model("gpt2") is None
    assert locate_model(f"local-dir:{in_tmp / 'org' / 'name'}") == (in_tmp / "org" / "name").resolve()
    assert _is_path("org/name") and _is_path("./x") and not _is_path("other/name")


def test_publish_takes_a_hub_id_with_or_without_its_prefix(in_tmp):
    from indexer.publish import PublishError, hub_model_id

    assert hub_model_id("/somewhere/model", "hf-hub:org/name") == "org/name"
    assert hub_model_id("hf-hub:org/name") == "org/name"
    with pytest.raises(PublishError, match="expected a Hub model id such as ORG/NAME"):
        hub_model_id("/somewhere/model", "C:\\models\\x")
    (in_tmp / "org" / "name").mkdir(parents=True)
    with pytest.raises(PublishError, match="a Space cannot load"):
        hub_model_id("org/name")  # the recorded name is this local folder, not a Hub id


def test_trainer_data_asks_the_hub_for_the_id_without_its_prefix(in_tmp, monkeypatch):
    from trainer import data

    asked = []
    monkeypatch.setattr(data, "_load_hub", lambda name: asked.append(name) or [])
    monkeypatch.setattr(data, "_dataset_rows", lambda loaded, source: iter(()))
    list(data._rows("hf-hub:org/data"))
    list(data._rows("org/data:Retrieval"))
    assert asked == ["org/data", "org/data:Retrieval"]  # "hf-hub:org/data" was read as repo "hf-hub"
    with pytest.raises(data.DataError, match=r"C:\\data\\x: data file or folder not found"):
        list(data._rows("C:\\data\\x"))
