"""CaptionCorpus: captions and images with their labels, before encoding; and its encoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xcm_debias.data import EmbeddingSet


@dataclass(frozen=True)
class CaptionCorpus:
    """A multilingual caption corpus as read from disk.

    Attributes:
        captions: the caption texts.
        language: language code of each caption.
        item: item of each caption (the image it describes).
        image_item: item of each image (one image per item here).
        image_path: file of each image (None when the images were not asked for).
        image_culture: culture / region label of each image (``""`` when the dataset has none).
    """

    captions: list[str]
    language: list[str]
    item: list[str]
    image_item: list[str]
    image_path: list[Path] | None = None
    image_culture: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.captions)
        for name in ("language", "item"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"{name}: expected {n} values (one per caption), got {len(getattr(self, name))}"
                )
        for name in ("image_path", "image_culture"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.image_item):
                raise ValueError(
                    f"{name}: expected {len(self.image_item)} values (one per image), got {len(value)}"
                )

    def languages(self) -> list[str]:
        """Sorted distinct caption languages."""
        return sorted(set(self.language))


def encode_corpus(corpus: CaptionCorpus, encoder: Any, image_encoder: Any = None) -> EmbeddingSet:
    """Captions through ``encoder.encode_texts`` and, when ``corpus.image_path`` is set, images
    through ``(image_encoder or encoder).encode_images``, as one EmbeddingSet.

    Rows carry ``item``, ``language`` (captions), ``culture`` (images) and the extra columns
    ``caption`` (``""`` for images) and ``image_path`` (the image file; the described image's
    for captions), so that both kinds concatenate.
    """
    if not isinstance(corpus, CaptionCorpus):
        raise TypeError(f"corpus: expected a CaptionCorpus, got {type(corpus).__name__}")
    _require(encoder, "encode_texts", "encoder")
    path_of = dict(zip(corpus.image_item, map(str, corpus.image_path or []), strict=False))
    caption_paths = np.array([path_of.get(i, "") for i in corpus.item], dtype=np.str_)
    parts = [
        encoder.encode_texts(
            corpus.captions,
            corpus.language,
            item=corpus.item,
            extra={
                "caption": np.asarray(corpus.captions, dtype=np.str_),
                "image_path": caption_paths,
            },
        )
    ]
    if corpus.image_path is not None:
        images = encoder if image_encoder is None else image_encoder
        _require(images, "encode_images", "image_encoder")
        n = len(corpus.image_path)
        parts.insert(
            0,
            images.encode_images(
                [str(p) for p in corpus.image_path],
                item=corpus.image_item,
                culture=corpus.image_culture,
                extra={
                    "caption": np.full(n, "", dtype="<U1"),
                    "image_path": np.array([str(p) for p in corpus.image_path], dtype=np.str_),
                },
            ),
        )
    return EmbeddingSet.concat(parts)


def _require(encoder: Any, method: str, name: str) -> None:
    if not callable(getattr(encoder, method, None)):
        raise TypeError(
            f"{name}: expected an encoder with {method}() (e.g. OpenCLIPEncoder), got "
            f"{type(encoder).__name__}"
        )


def check_files(paths: Sequence[Path], what: str) -> None:
    """Raise FileNotFoundError naming the first missing file of ``paths`` and how many are."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{what}: {len(missing)} of {len(paths)} files missing, first {str(missing[0])!r}"
        )
