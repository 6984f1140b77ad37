"""The command line: a real subprocess for the user path, in-process main() for the details."""

from __future__ import annotations

import json

import pytest

from indexer.__main__ import main


@pytest.mark.slow  # CLI subprocesses: 110-215 s measured at load average ~10 on 2 cores
def test_real_subprocess_build_search_info(cli, photos, tmp_path, tiny_mllama_dir, tiny_mllama):
    for i in range(4):
        photos.jpeg(f"{i}.jpg")
    index_dir = tmp_path / "index"
    result = cli("build", "--dir", photos.folder, "--index", index_dir, "--model", tiny_mllama_dir, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is only the result; bars and notes go to stderr
    assert summary["added"] == 4 and summary["errors"] == [] and summary["rate"] > 0
    assert "indexing" in result.stderr and "img/s" in result.stderr
    result = cli("search", "--index", index_dir, "--image", photos.folder / "2.jpg", "-k", "2")
    assert result.returncode == 0, result.stderr
    printed = [line.split("\t") for line in result.stdout.strip().splitlines()]
    from indexer import IndexStore

    with IndexStore.open(index_dir) as store:  # the same query computed here
        scores, ids = store.search(tiny_mllama.encode_image_queries([str(photos.folder / "2.jpg")]), 2)
        expected = [[f"{score:.4f}", record.path] for score, record in zip(scores[0], store.records(ids[0]))]
    assert printed == expected


def test_help_lists_every_command_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("build", "search", "info", "verify", "remove"):
        assert command in text
    assert "Examples:" in text and "python -m indexer build --dir" in text
    for command in ("build", "search", "info", "verify", "remove"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "Examples:" in capsys.readouterr().out


@pytest.fixture
def index_dir(photos, tmp_path, tiny_mllama_dir, capsys):
    for i in range(3):
        photos.jpeg(f"{i}.jpg", exif=photos.exif())
    photos.raw("broken.png", b"\x89PNG broken")
    index = tmp_path / "index"
    assert (
        main(["build", "--dir", str(photos.folder), "--index", str(index), "--model", str(tiny_mllama_dir), "--quiet"])
        == 0
    )
    capsys.readouterr()
    return index


def test_search_text_image_and_composed_json(index_dir, photos, capsys):
    assert main(["search", "--index", str(index_dir), "--text", "un perro en la playa", "-k", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["text"] == "un perro en la playa" and len(payload["results"]) == 2
    hit = payload["results"][0]
    assert set(hit) >= {"path", "score", "id", "size", "taken_at", "camera", "content_hash"}
    assert hit["taken_at"] == "2021-07-14T18:30:05" and hit["camera"] == "Canon EOS 5D"
    assert (
        main(
            [
                "search",
                "--index",
                str(index_dir),
                "--image",
                str(photos.folder / "1.jpg"),
                "--text",
                "but at night",
                "-k",
                "5",
                "--json",
            ]
        )
        == 0
    )
    composed = json.loads(capsys.readouterr().out)
    assert len(composed["results"]) == 3  # only 3 searchable images; no padding entries
    assert main(["search", "--index", str(index_dir)]) == 2
    assert "give --text, --image, or both" in capsys.readouterr().err


def test_info_text_and_json(index_dir, photos, capsys):
    assert main(["info", "--index", str(index_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 3 and info["errors"] == 1 and info["error_list"][0]["path"].endswith("broken.png")
    assert main(["info", "--index", str(index_dir)]) == 0
    text = capsys.readouterr().out
    assert (
        "3 searchable, 1 with errors" in text
        and "flat (exact; " in text
        and " bytes per image)" in text
        and "broken.png" in text
    )


def test_verify_and_remove_commands(index_dir, photos, capsys):
    assert main(["verify", "--index", str(index_dir)]) == 0
    assert "catalog and vector index agree" in capsys.readouterr().out
    (index_dir / "vectors.faiss").write_bytes(b"x")
    assert main(["verify", "--index", str(index_dir)]) == 1
    captured = capsys.readouterr()
    assert "does not match the checksum" in captured.err and "--repair" in captured.out
    assert main(["verify", "--index", str(index_dir), "--repair"]) == 0
    assert main(["verify", "--index", str(index_dir)]) == 0
    assert main(["remove", "--index", str(index_dir), "--dir", str(photos.folder)]) == 0
    assert "3 image(s) left the index" in capsys.readouterr().out


@pytest.mark.slow  # two builds through the CLI
def test_rebuild_uses_the_index_model_and_refuses_another(index_dir, photos, tiny_siglip_dir, capsys):
    photos.jpeg("3.jpg")
    assert main(["build", "--index", str(index_dir), "--quiet"]) == 0  # no --dir, no --model: the index's own
    assert capsys.readouterr().out.startswith("added 1,")
    assert main(["build", "--index", str(index_dir), "--model", str(tiny_siglip_dir), "--quiet"]) == 1
    assert "was built with" in capsys.readouterr().err


def test_clear_errors_before_any_work(tmp_path, tiny_mllama_dir, capsys):
    code = main(
        ["build", "--dir", str(tmp_path / "missing"), "--index", str(tmp_path / "idx"), "--model", str(tiny_mllama_dir)]
    )
    assert code == 1 and "folder does not exist" in capsys.readouterr().err and not (tmp_path / "idx").exists()
    assert main(["info", "--index", str(tmp_path / "nothing")]) == 1
    assert "no index here" in capsys.readouterr().err
    assert main(["search", "--index", str(tmp_path / "nothing"), "--text", "x"]) == 1
