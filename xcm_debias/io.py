"""Saving and loading EmbeddingSets: ``.npz``, ``.parquet`` and clip-retrieval folders.

The public face of :mod:`xcm_debias.formats` (the file layouts, as plain arrays) for
:class:`~xcm_debias.data.EmbeddingSet`: this module depends on both, neither on it, and
``EmbeddingSet.save``/``EmbeddingSet.load`` do the same as ``save``/``load`` here. No format
uses pickle: labels are unicode arrays, extra columns numbers/booleans/strings.

clip-retrieval layout (``clip-retrieval inference`` output)::

    folder/img_emb/img_emb_0.npy        [n0, D] image embeddings
    folder/text_emb/text_emb_0.npy      [n0, D] caption embeddings (row i pairs with image i)
    folder/metadata/metadata_0.parquet  n0 rows: image_path, caption, ... (+ optional
                                        item, language, culture, text_culture columns)

Each metadata row is one image–caption pair. Loading keeps every caption and one image per
distinct ``image_path``; a row's item is its ``item`` column, else its ``image_path`` (the
captions of one image are one item), else ``"<shard>:<row>"``. ``language`` labels the
captions (without it, a warning: per-language metrics would be None), ``culture`` the images.
"""

from __future__ import annotations

from pathlib import Path

import xcm_debias.formats as formats
from xcm_debias.data import EmbeddingSet


def save(data: EmbeddingSet, path: str | Path) -> Path:
    """Save by suffix: ``.npz``, ``.parquet``, or a clip-retrieval folder (no suffix)."""
    return formats.write(path, data.embeddings, data.to_columns())


def load(path: str | Path) -> EmbeddingSet:
    """Load by suffix: ``.npz``, ``.parquet``, or a clip-retrieval folder."""
    return EmbeddingSet.load(path)


def save_npz(data: EmbeddingSet, path: str | Path) -> Path:
    """Save as ``.npz``: ``embeddings`` plus one array per label and ``extra.<name>`` column."""
    return formats.write_npz(path, data.embeddings, data.to_columns())


def load_npz(path: str | Path) -> EmbeddingSet:
    """Load a ``.npz`` written by ``save_npz`` (an ``embeddings`` and a ``modality`` array)."""
    return EmbeddingSet.from_columns(*formats.read_npz(path), str(path))


def save_parquet(data: EmbeddingSet, path: str | Path) -> Path:
    """Save as ``.parquet``: a fixed-size-list ``embedding`` column plus the label columns."""
    return formats.write_parquet(path, data.embeddings, data.to_columns())


def load_parquet(path: str | Path) -> EmbeddingSet:
    """Load a ``.parquet`` with an ``embedding`` column and a ``modality`` column."""
    return EmbeddingSet.from_columns(*formats.read_parquet(path), str(path))


def save_clip_retrieval(data: EmbeddingSet, folder: str | Path) -> Path:
    """Write one shard of the clip-retrieval layout (image row i pairs with caption row i).

    One modality is written as it is; images and texts whose items agree row by row pair by
    pair; otherwise each caption is written with its item's only image, plus an ``image_path``
    column, as clip-retrieval writes several captions per image (``load_clip_retrieval`` keeps
    one image per path). Other sets raise ValueError: save them as ``.npz`` or ``.parquet``.
    """
    return formats.write_clip_retrieval(folder, data.embeddings, data.to_columns())


def load_clip_retrieval(folder: str | Path) -> EmbeddingSet:
    """Load ``img_emb/``, ``text_emb/`` and ``metadata/`` shards (any subset of the first two):
    the distinct images (by ``image_path``), then every caption (see the module docstring)."""
    return EmbeddingSet.from_columns(*formats.read_clip_retrieval(folder), str(folder))
