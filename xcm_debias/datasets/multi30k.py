"""Multi30K on disk: ``{split}.{lang}`` caption files (optionally ``.gz``), line i of each
describing image i named in ``{split}.images.txt``; the repository's own layout
(``data/task1/raw/{split}.{lang}.gz`` and ``data/task1/image_splits/{split}.txt``) is read too.

Multi30K (Elliott et al., 2016, "Multi30K: Multilingual English-German Image Descriptions";
French: Elliott et al., 2017; Czech: Barrault et al., 2018) translates one English caption per
Flickr30K image, so each image has one caption per language: the translations that
``LanguageAlignment`` learns from. Flickr30K images carry no culture label.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xcm_debias.data import EmbeddingSet
from xcm_debias.datasets.corpus import CaptionCorpus, check_files, encode_corpus

IMAGES_SUFFIX = ".images.txt"


def read_multi30k(
    root: str | Path,
    split: str = "test_2016_flickr",
    languages: Sequence[str] | None = None,
    image_dir: str | Path | None = None,
) -> CaptionCorpus:
    """Captions of ``split`` in every language found (or ``languages``) under ``root``.

    Caption files are looked for in ``root`` and ``root/raw``; items are the image file names of
    ``{split}.images.txt`` (or ``image_splits/{split}.txt``), ``"{split}:{line}"`` without one.
    With ``image_dir``, the corpus also lists the images (``image_dir/<name>``), which must exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: expected the Multi30K folder, got {str(root)!r}")
    found = _caption_files(root, split)
    wanted = sorted(found) if languages is None else list(languages)
    missing = [lang for lang in wanted if lang not in found]
    if not wanted or missing:
        raise FileNotFoundError(
            f"root: expected {split}.<lang> caption files for {missing or 'some language'} in "
            f"{str(root)!r}, found languages {sorted(found)}"
        )
    lines = {lang: _read_lines(found[lang]) for lang in wanted}
    n = len(lines[wanted[0]])
    for lang, texts in lines.items():
        if len(texts) != n:
            raise ValueError(
                f"{found[lang]}: expected {n} lines (as {found[wanted[0]].name}), got {len(texts)}"
            )
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise ValueError(f"{found[lang]}: line {empty[0] + 1} is an empty caption")
    names_file = next(
        (
            p
            for p in (root / f"{split}{IMAGES_SUFFIX}", root / "image_splits" / f"{split}.txt")
            if p.is_file()
        ),
        root / f"{split}{IMAGES_SUFFIX}",
    )
    names = _read_lines(names_file) if names_file.is_file() else None
    if names is not None and len(names) != n:
        raise ValueError(f"{names_file}: expected {n} image names (one per line), got {len(names)}")
    items = names if names is not None else [f"{split}:{i}" for i in range(n)]
    image_path = None
    if image_dir is not None:
        if names is None:
            raise FileNotFoundError(
                f"image_dir: the images need their names in {str(names_file)!r}, which is missing"
            )
        image_path = [Path(image_dir) / name for name in names]
        check_files(image_path, "image_dir")
    return CaptionCorpus(
        captions=[t for lang in wanted for t in lines[lang]],
        language=[lang for lang in wanted for _ in range(n)],
        item=[i for _ in wanted for i in items],
        image_item=list(items),
        image_path=image_path,
    )


def load_multi30k(
    root: str | Path,
    encoder: Any,
    split: str = "test_2016_flickr",
    languages: Sequence[str] | None = None,
    image_dir: str | Path | None = None,
    image_encoder: Any = None,
) -> EmbeddingSet:
    """:func:`read_multi30k`, encoded (see :func:`xcm_debias.datasets.encode_corpus`)."""
    return encode_corpus(read_multi30k(root, split, languages, image_dir), encoder, image_encoder)


def _caption_files(root: Path, split: str) -> dict[str, Path]:
    """Language code -> caption file (``{split}.{lang}`` or ``.gz``, in ``root`` or ``root/raw``)."""
    files = {}
    for path in sorted([*(root / "raw").glob(f"{split}.*"), *root.glob(f"{split}.*")]):
        rest = path.name[len(split) + 1 :].removesuffix(".gz")
        if rest and "." not in rest and path.name != f"{split}{IMAGES_SUFFIX}":
            files[rest] = path
    return files


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f]
