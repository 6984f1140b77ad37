"""Indexes on the Hugging Face Hub: `push` uploads one as a dataset repo, ``hf://datasets/USER/NAME`` serves one.

Both go through the real ``huggingface_hub`` API; every failure a user can fix (no token, someone
else's repo, no network, a repo that is not an index) becomes one PublishError/IndexNotFoundError
sentence for the CLI runner.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .errors import IndexerError, IndexNotFoundError

HUB_PREFIX = "hf://"
READ_ONLY_ADVICE = ("an index on the Hub is read-only: build and watch a local index, then publish it again with "
                    "`python -m indexer push --index INDEX --repo USER/NAME`")


def is_hub_index(value) -> bool:
    """``hf://...`` (also as argparse's Path makes it, ``hf:/...``)."""
    return value is not None and str(value).startswith(("hf://", "hf:/"))


def parse_hub_index(value) -> tuple[str, str | None]:
    """(repo id, revision or None) of ``hf://datasets/USER/NAME[@REVISION]``; IndexNotFoundError otherwise."""
    from huggingface_hub.errors import HfUriError
    from huggingface_hub.utils import parse_hf_uri

    text = str(value)
    if text.startswith("hf:/") and not text.startswith(HUB_PREFIX):
        text = HUB_PREFIX + text[len("hf:/"):]
    try:
        uri = parse_hf_uri(text)
    except HfUriError as error:
        raise IndexNotFoundError(f"{text}: not an index address ({error}); expected hf://datasets/USER/NAME or "
                                 "hf://datasets/USER/NAME@REVISION") from None
    if uri.type != "dataset" or uri.path_in_repo:
        raise IndexNotFoundError(f"{text}: an index on the Hub is a whole dataset repo: "
                                 "hf://datasets/USER/NAME[@REVISION]")
    return uri.id, uri.revision


def download_index(value) -> Path:
    """The local folder of a published index: downloaded once into the Hugging Face cache (offline: the cached copy)."""
    from huggingface_hub import snapshot_download

    from .catalog import CATALOG_FILE

    repo_id, revision = parse_hub_index(value)
    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
    except Exception as error:  # noqa: BLE001 - sorted by hub_problem; anything else is re-raised as a bug
        problem = hub_problem(error, repo_id, reading=True)
        if problem is None:
            raise
        raise problem from None
    if not (folder / CATALOG_FILE).is_file():
        raise IndexNotFoundError(f"{value}: the dataset has no {CATALOG_FILE}: it is not an index published with "
                                 "`python -m indexer push`")
    return folder


def push(index_dir, repo_id: str, private: bool = False, originals: bool = False, token: str | None = None,
         model_id: str | None = None, message: str | None = None, show_progress: bool = True) -> str:
    """Publish an index as the dataset repo ``repo_id``; returns the commit's URL."""
    from huggingface_hub import HfApi

    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from .publish import PublishError, prepare_push

    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("expected USER/NAME")
    except HFValidationError as error:
        raise PublishError(f"--repo {repo_id!r}: not a repo name ({_first_line(error)}); give USER/NAME, e.g. "
                           "alice/holiday-photos") from None
    api = HfApi(token=token)
    try:
        user = api.whoami()["name"]  # before minutes of previews: no token / no network is said at once
    except Exception as error:  # noqa: BLE001 - sorted by hub_problem
        raise _hub_error(error, repo_id) from None
    with tempfile.TemporaryDirectory(prefix="mme5-push-") as staging:
        prepared = prepare_push(index_dir, Path(staging) / "dataset", originals=originals, model_id=model_id,
                                show_progress=show_progress)
        for line in prepared.skipped[:20]:
            print(f"indexer: not published: {line}", file=sys.stderr)
        try:
            url = api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
            print(f"uploading {prepared.photos} photos ({prepared.previews} previews"
                  f"{f', {prepared.originals} originals' if originals else ''}) to {url} as {user} ...",
                  file=sys.stderr)
            commit = api.upload_folder(
                repo_id=repo_id, repo_type="dataset", folder_path=prepared.folder,
                commit_message=message or f"Publish a photo index of {prepared.photos} photos",
                delete_patterns=["previews/**", "originals/**"])  # photos gone since the last push go too
        except Exception as error:  # noqa: BLE001 - sorted by hub_problem
            raise _hub_error(error, repo_id) from None
    return commit.commit_url


def _hub_error(error: BaseException, repo_id: str) -> BaseException:
    problem = hub_problem(error, repo_id, reading=False)
    if problem is None:
        raise error
    return problem


def hub_problem(error: BaseException, repo_id: str, reading: bool) -> IndexerError | None:
    """The one-sentence error a Hub failure stands for, or None (then it is a bug and shown as one)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from .publish import PublishError

    where = f"hf://datasets/{repo_id}"
    if isinstance(error, LocalTokenNotFoundError):
        return PublishError("not logged in to Hugging Face: run `hf auth login` (a token with write access), set "
                            "HF_TOKEN, or pass --token")
    if isinstance(error, RevisionNotFoundError):
        return IndexNotFoundError(f"{where}: no such revision ({_first_line(error)})")
    if isinstance(error, GatedRepoError) or (isinstance(error, RepositoryNotFoundError) and reading):
        return IndexNotFoundError(f"{where}: no such dataset, or it is private or gated: check the name, and for a "
                                  "private one log in (`hf auth login`) or set HF_TOKEN (a Space secret)")
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return IndexNotFoundError(f"{where}: not in the Hugging Face cache and the Hub cannot be reached (offline, "
                                  "HF_HUB_OFFLINE=1 or no network); connect once to download it")
    if isinstance(error, HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401:
            return PublishError("the Hugging Face token was refused (invalid or expired): run `hf auth login` again "
                                "or pass another --token")
        if status == 403 or isinstance(error, RepositoryNotFoundError):
            return PublishError(f"{repo_id}: no write access: the repo belongs to someone else, or the token is "
                                "read-only. Publish under your own name (`hf auth whoami` shows it) or an "
                                f"organisation you can write to, with a write token ({_first_line(error)})")
        return PublishError(f"{where}: the Hub refused the request ({_first_line(error)}); try again later")
    if isinstance(error, (*_transport_errors(), ConnectionError, TimeoutError)):
        return PublishError(f"cannot reach the Hugging Face Hub ({_first_line(error) or type(error).__name__}): "
                            "check the network connection (or HF_ENDPOINT), then run the same command again")
    return None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """No connection, DNS, timeouts: the HTTP client's transport errors (huggingface_hub uses httpx2, older
    releases httpx)."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(__import__(name).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""
