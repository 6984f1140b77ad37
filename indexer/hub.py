"""Indexes on the Hugging Face Hub: `push` uploads one as a dataset repo, ``hf://datasets/USER/NAME`` serves one.

Both go through the real ``huggingface_hub`` API; every failure a user can fix (no token, someone
else's repo, no network, a repo that is not an index) becomes one PublishError/IndexNotFoundError
sentence for the CLI runner.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from pathlib import Path

from .errors import IndexerError, IndexNotFoundError, first_line

from .published import HUB_PREFIX

logger = logging.getLogger(__name__)
# Previews/originals per commit: the Hub advises splitting large uploads into several commits, and 1,000 is the
# largest commit huggingface_hub's own upload_large_folder makes. 100k photos: 100 commits, then the catalog's.
COMMIT_FILES = 1000
READ_ONLY_ADVICE = (
    "an index on the Hub is read-only: build and watch a local index, then publish it again with "
    "`python -m indexer push --index INDEX --repo USER/NAME`"
)


def is_hub_index(value) -> bool:
    """``hf://...`` (also as argparse's Path makes it, ``hf:/...``)."""
    return value is not None and str(value).startswith(("hf://", "hf:/"))


def parse_hub_index(value) -> tuple[str, str | None]:
    """(repo id, revision or None) of ``hf://datasets/USER/NAME[@REVISION]``; IndexNotFoundError otherwise."""
    from huggingface_hub.errors import HfUriError
    from huggingface_hub.utils import parse_hf_uri

    text = str(value)
    if text.startswith("hf:/") and not text.startswith(HUB_PREFIX):
        text = HUB_PREFIX + text[len("hf:/") :]
    try:
        uri = parse_hf_uri(text)
    except HfUriError as error:
        raise IndexNotFoundError(
            f"{text}: not an index address ({error}); expected hf://datasets/USER/NAME or "
            "hf://datasets/USER/NAME@REVISION"
        ) from None
    if uri.type != "dataset" or uri.path_in_repo:
        raise IndexNotFoundError(
            f"{text}: an index on the Hub is a whole dataset repo: hf://datasets/USER/NAME[@REVISION]"
        )
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
        raise IndexNotFoundError(
            f"{value}: the dataset has no {CATALOG_FILE}: it is not an index published with `python -m indexer push`"
        )
    return folder


def push(
    index_dir,
    repo_id: str,
    private: bool = False,
    originals: bool = False,
    token: str | None = None,
    model_id: str | None = None,
    message: str | None = None,
    show_progress: bool = True,
) -> str:
    """Publish an index as the dataset repo ``repo_id``; returns the URL of the commit that publishes the catalog.

    Several commits, resumable: previews and originals not yet in the repo go first, COMMIT_FILES per commit
    (those already there are skipped, so a rerun after any failure uploads only what is missing); the catalog,
    the vectors, the card, the adapter (small, and never to be served apart from its catalog) and the deletion
    of files no longer referenced go last, in one commit. Until then the repo serves the previous catalog, whose
    files are all still there.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, RepoFile
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    from tqdm import tqdm

    from .publish import PublishError, prepare_push

    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("expected USER/NAME")
    except HFValidationError as error:
        raise PublishError(
            f"--repo {repo_id!r}: not a repo name ({first_line(error)}); give USER/NAME, e.g. alice/holiday-photos"
        ) from None
    api = HfApi(token=token)
    try:
        user = api.whoami()["name"]  # before minutes of previews: no token / no network is said at once
    except Exception as error:  # noqa: BLE001 - sorted by hub_problem
        raise _hub_error(error, repo_id) from None
    with tempfile.TemporaryDirectory(prefix="mme5-push-") as staging:
        prepared = prepare_push(
            index_dir, Path(staging) / "dataset", originals=originals, model_id=model_id, show_progress=show_progress
        )
        for line in prepared.skipped[:20]:
            logger.warning(f"indexer: not published: {line}")
        folder = prepared.folder
        try:
            url = api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
            remote = {
                entry.path: entry
                for entry in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True)
                if isinstance(entry, RepoFile)
            }  # files, not folders
        except Exception as error:  # noqa: BLE001 - sorted by hub_problem
            raise _hub_error(error, repo_id) from None
        missing, stale = upload_plan(folder, remote)
        chunks = [missing[start : start + COMMIT_FILES] for start in range(0, len(missing), COMMIT_FILES)]
        logger.info(
            f"uploading {prepared.photos} photos ({prepared.previews} previews"
            f"{f', {prepared.originals} originals' if originals else ''}) to {url} as {user}: "
            f"{len(missing)} files not there yet, in {len(chunks) + 1} commits (the catalog"
            f"{' and the adapter' if prepared.adapter else ''} last) ..."
        )
        progress = tqdm(
            total=len(chunks) + 1, desc="commits", unit="commit", disable=not show_progress, file=sys.stderr
        )
        with progress, _hub_progress_bars(show_progress):
            for number, chunk in enumerate(chunks, 1):
                try:
                    api.create_commit(
                        repo_id,
                        repo_type="dataset",
                        operations=[CommitOperationAdd(path, str(folder / path)) for path in chunk],
                        commit_message=f"Upload {len(chunk)} files ({number}/{len(chunks)}) for a "
                        f"photo index of {prepared.photos} photos",
                    )
                except Exception as error:  # noqa: BLE001 - sorted by hub_problem
                    raise _resumable(_hub_error(error, repo_id), (number - 1) * COMMIT_FILES, len(missing)) from None
                progress.update()
            operations: list[CommitOperationAdd | CommitOperationDelete] = [
                CommitOperationAdd(name, str(folder / name)) for name in catalog_files(folder)
            ]
            operations += [CommitOperationDelete(path) for path in stale]  # photos (or an adapter) gone since
            try:
                commit = api.create_commit(
                    repo_id,
                    repo_type="dataset",
                    operations=operations,
                    commit_message=message or f"Publish a photo index of {prepared.photos} photos",
                )
            except Exception as error:  # noqa: BLE001 - sorted by hub_problem
                raise _resumable(_hub_error(error, repo_id), len(missing), len(missing)) from None
            progress.update()
    return commit.commit_url


@contextlib.contextmanager
def _hub_progress_bars(shown: bool):
    """huggingface_hub's own bars (hashing, LFS uploads) follow --quiet too, for this push only."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    if shown or are_progress_bars_disabled():
        yield
        return
    disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()


def catalog_files(folder: Path) -> list[str]:
    """What the last commit uploads, as repo paths: the catalog, the vectors, the card and the adapter's files
    (the catalog must never be served without the adapter its vectors were made with)."""
    from .catalog import CATALOG_FILE
    from .published import ADAPTER
    from .vectors import INDEX_FILE

    return [CATALOG_FILE, INDEX_FILE, "README.md", *_files_under(folder, ADAPTER)]


def upload_plan(folder: Path, remote: dict) -> tuple[list[str], list[str]]:
    """(files under previews/ and originals/ of ``folder`` that the repo lacks, repo files under previews/,
    originals/ or adapter/ no longer in ``folder``), as repo paths; ``remote`` maps the repo's file paths to their
    RepoFile (size, hashes). The adapter's files themselves go with the catalog (``catalog_files``).

    A preview's name is its photo's content hash, so one of the same name and size is the same; an original
    (named by its place, not its content) is skipped only when its size and hash match."""
    from .published import ADAPTER, ORIGINALS, PREVIEWS

    local = sorted(path for top in (PREVIEWS, ORIGINALS) for path in _files_under(folder, top))
    missing = [
        path
        for path in local
        if path not in remote or not _same_file(folder / path, remote[path], by_name=path.startswith(f"{PREVIEWS}/"))
    ]
    wanted = set(local) | set(_files_under(folder, ADAPTER))
    stale = sorted(
        path
        for path in remote
        if path.startswith((f"{PREVIEWS}/", f"{ORIGINALS}/", f"{ADAPTER}/")) and path not in wanted
    )
    return missing, stale


def _files_under(folder: Path, top: str) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in (folder / top).rglob("*") if path.is_file())


def _same_file(local: Path, remote, by_name: bool) -> bool:
    """Whether the repo's file (a RepoFile) holds ``local``'s bytes: same size, and unless ``by_name`` the same
    sha256 (Git LFS files) or Git blob id (files stored in Git)."""
    import hashlib

    size = local.stat().st_size
    if size != remote.size:
        return False
    if by_name:
        return True
    lfs = getattr(remote, "lfs", None)
    digest = hashlib.sha256() if lfs else hashlib.sha1(f"blob {size}\0".encode())
    with local.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == (lfs.sha256 if lfs else remote.blob_id)


def _resumable(problem: BaseException, committed: int, total: int) -> BaseException:
    """A failure after the upload began: what is on the Hub stays, and the same command resumes."""
    if not isinstance(problem, IndexerError):
        return problem
    return type(problem)(
        f"{problem}. {committed} of {total} new files were committed and the repo still serves "
        "the index published before (if any); run the same command again: it uploads only what "
        "is missing"
    )


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
        return PublishError(
            "not logged in to Hugging Face: run `hf auth login` (a token with write access), set "
            "HF_TOKEN, or pass --token"
        )
    if isinstance(error, RevisionNotFoundError):
        return IndexNotFoundError(f"{where}: no such revision ({first_line(error)})")
    if isinstance(error, GatedRepoError) or (isinstance(error, RepositoryNotFoundError) and reading):
        return IndexNotFoundError(
            f"{where}: no such dataset, or it is private or gated: check the name, and for a "
            "private one log in (`hf auth login`) or set HF_TOKEN (a Space secret)"
        )
    if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return IndexNotFoundError(
            f"{where}: not in the Hugging Face cache and the Hub cannot be reached (offline, "
            "HF_HUB_OFFLINE=1 or no network); connect once to download it"
        )
    if isinstance(error, HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401:
            return PublishError(
                "the Hugging Face token was refused (invalid or expired): run `hf auth login` again "
                "or pass another --token"
            )
        if status == 403 or isinstance(error, RepositoryNotFoundError):
            return PublishError(
                f"{repo_id}: no write access: the repo belongs to someone else, or the token is "
                "read-only. Publish under your own name (`hf auth whoami` shows it) or an "
                f"organisation you can write to, with a write token ({first_line(error)})"
            )
        return PublishError(f"{where}: the Hub refused the request ({first_line(error)}); try again later")
    if isinstance(error, (*_transport_errors(), ConnectionError, TimeoutError)):
        return PublishError(
            f"cannot reach the Hugging Face Hub ({first_line(error) or type(error).__name__}): "
            "check the network connection (or HF_ENDPOINT), then run the same command again"
        )
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


# -- a published index is data from a stranger ----------------------------------------------------------------------
