"""The inputs of ``xcm-debias encode``: a captions table and an image folder, checked and
mapped to labelled rows (an image's item is its file stem, or the table's image column)."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xcm_debias.cli import CLIError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


@dataclass(frozen=True)
class Captions:
    """The captions table, checked: one entry per caption row."""

    item: list[str]
    language: list[str]  # "" where the table gives none (identified from the text)
    text: list[str]
    culture: list[str] | None
    image: list[str] | None


def read_table(path: Path) -> dict[str, list[str]]:
    """Columns of a .csv/.tsv/.parquet table, every value as a string ('' for missing)."""
    if not path.is_file():
        raise CLIError(f"CAPTIONS: no such file: {str(path)!r}")
    if path.suffix not in TABLE_SUFFIXES:
        raise CLIError(f"CAPTIONS: expected a {', '.join(TABLE_SUFFIXES)} table, got {str(path)!r}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return {
            name: ["" if v is None else str(v) for v in table.column(name).to_pylist()]
            for name in table.column_names
        }
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: tables saved by Excel
        reader = csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        rows = list(reader)
        names = reader.fieldnames or []
    return {name: [(row.get(name) or "").strip() for row in rows] for name in names}


def read_captions(args: argparse.Namespace) -> Captions:
    path = Path(args.captions)
    table = read_table(path)
    required = {
        "item": args.item_column,
        "language": args.language_column,
        "caption": args.caption_column,
    }
    if args.language_column == "language" and "language" not in table:
        del required["language"]  # no language column: identified from the captions' text
    missing = [f"{column!r} ({role})" for role, column in required.items() if column not in table]
    if missing:
        raise CLIError(
            f"CAPTIONS: expected the columns {', '.join(missing)} in {path.name}, got "
            f"{sorted(table)} (rename with --item-column, --language-column, --caption-column)"
        )
    if not table[args.item_column]:
        raise CLIError(f"CAPTIONS: expected at least one caption row in {path.name}, got none")
    for role, column in required.items():
        if role == "language":
            continue  # empty cells: identified from the captions' text
        empty = [i for i, v in enumerate(table[column]) if not v]
        if empty:
            raise CLIError(
                f"CAPTIONS: expected a value in column {column!r} ({role}) on every row, got "
                f"{len(empty)} empty (first: data row {empty[0] + 1})"
            )
    return Captions(
        item=table[args.item_column],
        language=table.get(args.language_column, [""] * len(table[args.item_column])),
        text=table[args.caption_column],
        culture=table.get(args.culture_column),
        image=table.get(args.image_column),
    )


def one_per_key(keys: Sequence[str], values: Sequence[str], what: str) -> dict[str, str]:
    """``key -> value`` from aligned rows, requiring one value per key (empty values skipped)."""
    out: dict[str, str] = {}
    for key, value in zip(keys, values, strict=True):
        if not value:
            continue
        if out.setdefault(key, value) != value:
            raise CLIError(
                f"CAPTIONS: expected one {what} per {key!r}, got {out[key]!r} and {value!r}"
            )
    return out


def find_images(
    folder: Path, captions: Captions, from_folder: bool
) -> tuple[list[str], list[str], list[str]]:
    """(paths, items, cultures) of the images to encode, in a stable order."""
    if not folder.is_dir():
        raise CLIError(f"IMAGES: expected a folder of images, got {str(folder)!r}")
    if captions.image is not None:
        item_of = one_per_key(captions.image, captions.item, "item for image")
        culture_of = (
            {}
            if captions.culture is None
            else one_per_key(captions.image, captions.culture, "culture for image")
        )
        relative = sorted(item_of)
        missing = [r for r in relative if not (folder / r).is_file()]
        if missing:
            raise CLIError(
                f"CAPTIONS: image column names {len(missing)} file(s) not in {folder} "
                f"(first: {missing[0]!r})"
            )
        items = [item_of[r] for r in relative]
        cultures = [culture_of.get(r, "") for r in relative]
    else:
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise CLIError(
                f"IMAGES: expected image files ({' '.join(IMAGE_SUFFIXES)}) in {folder}, found none"
            )
        relative = [p.relative_to(folder).as_posix() for p in files]
        items = [p.stem for p in files]
        culture_of = (
            {}
            if captions.culture is None
            else one_per_key(captions.item, captions.culture, "culture for item")
        )
        cultures = [culture_of.get(item, "") for item in items]
    if from_folder:
        cultures = [Path(r).parent.name for r in relative]
        top = [r for r, c in zip(relative, cultures, strict=True) if not c]
        if top:
            raise CLIError(
                f"--culture-from-folder: expected every image in a culture folder, got {top[0]!r} "
                f"directly in {folder}"
            )
    without_image = sorted(set(captions.item) - set(items))
    if without_image:
        raise CLIError(
            f"CAPTIONS: {len(without_image)} item(s) have captions but no image (first: "
            f"{without_image[0]!r}); an image's item is its file stem, or give an image column"
        )
    return relative, items, cultures
