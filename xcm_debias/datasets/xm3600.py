"""Crossmodal-3600 (XM3600), as published: ``captions.jsonl`` and an ``images/`` folder.

XM3600 (Thapliyal, Pont-Tuset, Chen and Soricut, "Crossmodal-3600: A Massively Multilingual
Multimodal Evaluation Dataset", EMNLP 2022): 3600 images from 36 regions, each with human
captions written natively in 36 languages. Each line of ``captions.jsonl`` is one image::

    {"image/key": "<hex id>", "image/locale": "<region's language code>",
     "en": {"caption": ["...", ...], ...}, "de": {"caption": [...], ...}, ...}

and ``images/<key>.jpg`` is its file. The image locale is the image's culture label, so the
report's own-culture metrics work with ``culture_of_language`` mapping each language to its
locale (the identity for most).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.datasets.corpus import CaptionCorpus, check_files, encode_corpus


def read_xm3600(
    captions: str | Path,
    image_dir: str | Path | None = None,
    languages: Sequence[str] | None = None,
    captions_per_language: int | None = None,
) -> CaptionCorpus:
    """Every caption of ``captions.jsonl`` (or those in ``languages``), item = ``image/key``,
    image culture = ``image/locale``; with ``image_dir``, the images ``<key>.jpg`` there.

    ``captions_per_language`` keeps the first n captions of each image and language (1 gives
    every language the same weight in the image→text gallery).
    """
    if captions_per_language is not None:
        captions_per_language = check_positive_int(captions_per_language, "captions_per_language")
    path = Path(captions)
    if not path.is_file():
        raise FileNotFoundError(f"captions: expected XM3600's captions.jsonl, got {str(path)!r}")
    keys, locales, texts, language, item = [], [], [], [], []
    wanted = None if languages is None else set(languages)
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict) or "image/key" not in record:
                raise ValueError(f"{path}:{number}: expected an object with 'image/key'")
            key = str(record["image/key"])
            keys.append(key)
            locales.append(str(record.get("image/locale", "")))
            for lang, entry in record.items():
                if not isinstance(entry, dict) or "caption" not in entry:
                    continue
                seen.add(lang)
                if wanted is not None and lang not in wanted:
                    continue
                for caption in entry["caption"][:captions_per_language]:
                    texts.append(str(caption))
                    language.append(lang)
                    item.append(key)
    if not keys:
        raise ValueError(f"{path}: expected one image per line, found none")
    missing = sorted((wanted or set()) - seen)
    if missing or not texts:
        raise ValueError(
            f"languages: expected captions in {missing or 'some language'}, found {sorted(seen)}"
        )
    image_path = None
    if image_dir is not None:
        image_path = [Path(image_dir) / f"{key}.jpg" for key in keys]
        check_files(image_path, "image_dir")
    return CaptionCorpus(
        captions=texts,
        language=language,
        item=item,
        image_item=keys,
        image_path=image_path,
        image_culture=locales,
    )


def load_xm3600(
    captions: str | Path,
    encoder: Any,
    image_dir: str | Path | None = None,
    languages: Sequence[str] | None = None,
    image_encoder: Any = None,
    captions_per_language: int | None = None,
) -> EmbeddingSet:
    """:func:`read_xm3600`, encoded (see :func:`xcm_debias.datasets.encode_corpus`)."""
    corpus = read_xm3600(captions, image_dir, languages, captions_per_language)
    return encode_corpus(corpus, encoder, image_encoder)
