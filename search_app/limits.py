"""Every bound on what comes into the app, defined once: text lengths, uploads, similar-photo groups, heavy calls.

A request over a bound is refused before any work, with one sentence that names the field, its size and the
limit (``too_long``); the UI shows it in the status line and the HTTP API returns it as the error message.
"""

from __future__ import annotations

# -- texts -------------------------------------------------------------------------------------------------------
MAX_QUERY_CHARS = 2_000  # a query is a description, not a document: longer text is refused before the model sees it
MAX_FILTER_CHARS = 500  # a folder, camera, place, file type or date filter value (a deep folder path fits)
MAX_ALBUM_NAME_CHARS = 200  # an album's name (it is shown in lists and used for a zip's file name)
MAX_WITHOUT = 8  # "without" texts per query: each costs one text encoding
MAX_K = 200  # results per page (API ``k``)

# -- uploads (a photo to search with) ----------------------------------------------------------------------------
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 80_000_000  # 80 MP: more than any phone; beyond it decoding alone costs seconds and GBs
# File-name endings an upload may have (what the indexer reads; checked again by decoding the image).
UPLOAD_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".webp", ".heic", ".heif", ".gif", ".tif", ".tiff", ".bmp", ".avif")

# -- similar-photo groups (indexer/similar.py) ---------------------------------------------------------------------
MIN_SIMILAR_THRESHOLD = 0.8  # below it nothing is "near-identical" and the work grows with the square of the library
MAX_SIMILAR_PAIRS = 500_000  # similar pairs one call may join; more means the threshold is too low for this library

# -- the REST API (search_app/rest.py) ------------------------------------------------------------------------------
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 2**20  # one upload plus its form fields
API_QUEUE = 256  # REST requests admitted beyond those running (--concurrency); more answer 503 at once
MAX_WAIT_S = 30.0  # an admitted request waits this long for a model slot at most, then answers 503
RETRY_AFTER_S = 1
SCREEN_SIZE = 1600  # long side of the screen-sized rendition (EXIF-rotated JPEG, cached beside the previews)

# -- heavy calls (similar groups, album zips) -----------------------------------------------------------------------
HEAVY_SLOT = "heavy"  # Gradio concurrency_id of the calls that may take long: searches never wait behind them
HEAVY_CONCURRENCY = 1  # heavy calls running at once (each further one waits in its own queue)


class LimitError(ValueError):
    """A request over one of the bounds above; its message is the sentence shown to the user."""


def too_long(what: str, length: int, limit: int, advice: str) -> LimitError:
    return LimitError(f"The {what} is too long ({length:,} characters; at most {limit:,}): {advice}")


def check_length(
    text,
    what: str = "query text",
    limit: int = MAX_QUERY_CHARS,
    advice: str = "describe the photo in a sentence or two.",
) -> None:
    """Refuse over-long text before anything reads it: stripping, date or place parsing of 30 MB take minutes."""
    if isinstance(text, str) and len(text) > limit:
        raise too_long(what, len(text), limit, advice)


def not_a_photo_file(name: str) -> LimitError:
    kinds = ", ".join(suffix.lstrip(".") for suffix in UPLOAD_SUFFIXES)
    return LimitError(f"The upload {name} is not a photo file: upload a photo ({kinds}).")


def check_filter(name: str, value) -> None:
    """A filter value (folder, camera, place, file type, dates) within MAX_FILTER_CHARS."""
    check_length(value, f"{name} filter", MAX_FILTER_CHARS, "use a shorter value (a folder, a camera or a place name).")


def check_album_name(name) -> None:
    check_length(name, "album name", MAX_ALBUM_NAME_CHARS, "choose a shorter name.")


def check_similar_threshold(threshold: float) -> None:
    if not MIN_SIMILAR_THRESHOLD <= threshold <= 1:
        raise LimitError(
            f"The similarity threshold must be from {MIN_SIMILAR_THRESHOLD:g} to 1, got {threshold:g}: "
            "lower values do not find near-identical photos and compare every photo with every other."
        )


def too_many_pairs(pairs: int, threshold: float) -> LimitError:
    return LimitError(
        f"More than {MAX_SIMILAR_PAIRS:,} pairs of photos are similar at ≥ {threshold:g} "
        f"(found {pairs:,} so far): raise the threshold to find near-identical photos only."
    )


# -- map areas (search_app/geo.py: the ``near`` and ``bbox`` filters, "within 5 km of Lisbon") ----------------------
MAX_RADIUS_KM = 20_000.0  # about half the Earth's circumference: a larger radius would be every photo with GPS
NEAR_DEFAULT_KM = 25.0  # "near Lisbon": a city with its suburbs (reverse geocoding names photos there after the suburb)
