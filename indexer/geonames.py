"""The GeoNames tables shipped with the project (indexer/data/, CC BY 4.0, https://www.geonames.org; built by
scripts/make_geonames_table.py): where they lie, their columns, and reading one with a clear error when it is
missing or damaged.

Each is a gzip'd UTF-8 text file: a header line (``#geonames-<kind> v1`` and the column names, tab-separated), then
one tab-separated row per city. Lists inside a field are separated by ``SEPARATOR``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
PLACES_FILE = DATA_DIR / "geonames-places.tsv.gz"  # indexer/places.py: position -> city, region, country
NAMES_FILE = DATA_DIR / "geonames-names.tsv.gz"  # search_app/gazetteer.py: a city's names in every script
PLACES_COLUMNS = ("latitude", "longitude", "name", "region", "country")
NAMES_COLUMNS = ("geonameid", "name", "country", "latitude", "longitude", "names", "aliases")
SEPARATOR = "|"
VERSION = "v1"
REMEDY = (
    "reinstall the project (pip install --force-reinstall --no-deps .), or restore the file from the "
    "repository (git checkout -- indexer/data), or rebuild it: python -m scripts.make_geonames_table"
)


class GeoNamesTableError(RuntimeError):
    """A shipped GeoNames table is missing or damaged (the message names the file and what to do)."""


def header(kind: str, columns: tuple[str, ...]) -> str:
    return "\t".join((f"#geonames-{kind} {VERSION}", *columns))


def read_columns(path: Path, kind: str, columns: tuple[str, ...]) -> list[list[str]]:
    """A table's columns (one list of strings per column, a string per city), or GeoNamesTableError saying what is
    wrong. (Column-wise: one split of the whole text, no list per row; ~0.1 s for 150,000 cities.)"""

    def damaged(what: str) -> GeoNamesTableError:
        return GeoNamesTableError(f"the GeoNames {kind} table {path} {what}: {REMEDY}")

    try:
        with open(path, "rb") as file:
            text = gzip.decompress(file.read()).decode("utf-8")  # gzip checks its CRC: a flipped byte is an error
    except FileNotFoundError:
        raise damaged("is missing") from None
    except OSError as error:  # a corrupt gzip stream (BadGzipFile is an OSError), or an unreadable file
        raise damaged(f"cannot be read ({error})") from None
    except (EOFError, zlib.error) as error:
        raise damaged(f"is damaged (truncated or corrupt: {error})") from None
    except UnicodeDecodeError:
        raise damaged("is damaged (not UTF-8 text)") from None
    first, _, body = text.partition("\n")
    if first != header(kind, columns):
        raise damaged(f"has the wrong header (expected {header(kind, columns)!r}, found {first[:80]!r})")
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise damaged("is damaged (no rows)")
    tabs = len(columns) - 1
    for number, line in enumerate(lines, start=2):
        if line.count("\t") != tabs:
            raise damaged(f"is damaged (line {number} has {line.count(chr(9)) + 1} fields, not {len(columns)})")
    fields = "\t".join(lines).split("\t")
    return [fields[column :: len(columns)] for column in range(len(columns))]
