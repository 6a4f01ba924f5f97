"""Multi30K task-1 captions as a text-only retrieval corpus, encoded with USE-m3 (cached).

A small loader for the development case of ``benchmarks/real_text.py``: ``{split}.{lang}``
files of the Multi30K data folder (one caption per line, line ``i`` of every language describes
the same Flickr30K image). The English sentence of each line plays the "image"
(``modality="image"``, no culture label); the other languages' sentences are its captions
(``modality="text"``, ``language``); ``item`` is ``"{split}:{line}"`` so that two splits never
share an item. Embeddings are cached per file as ``.npz`` (keyed by the SHA-256 of the text),
so the slow encoder runs once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from xcm_debias import EmbeddingSet

PIVOT = "en"
CAPTION_LANGUAGES = ("de", "fr", "cs")


def read_lines(data_dir: Path, split: str, language: str) -> list[str]:
    """The captions of ``{split}.{language}``, one per line (a missing file is an error)."""
    path = Path(data_dir) / f"{split}.{language}"
    if not path.is_file():
        raise FileNotFoundError(f"data_dir: expected {path} (Multi30K task-1 raw captions)")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or any(not line.strip() for line in lines):
        raise ValueError(f"{path}: expected one non-empty caption per line")
    return lines


def embed_cached(lines: list[str], cache: Path, name: str) -> np.ndarray:
    """USE-m3 embeddings of ``lines``, read from ``cache/name.npz`` when its texts match."""
    digest = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
    path = Path(cache) / f"{name}.npz"
    if path.is_file():
        stored = np.load(path)
        if str(stored["sha256"]) == digest:
            return stored["embeddings"]
    from xcm_debias.encoders import USEEncoder

    x = USEEncoder(batch_size=128).embed_texts(lines).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, embeddings=x, sha256=np.array(digest))
    return x


def load_split(data_dir: Path, split: str, cache: Path) -> EmbeddingSet:
    """One split as an EmbeddingSet: English lines as images, de/fr/cs lines as captions."""
    parts = []
    n_lines = None
    for language in (PIVOT, *CAPTION_LANGUAGES):
        lines = read_lines(data_dir, split, language)
        if n_lines is not None and len(lines) != n_lines:
            raise ValueError(
                f"{split}.{language}: expected {n_lines} lines (as {split}.{PIVOT}), got {len(lines)}"
            )
        n_lines = len(lines)
        x = embed_cached(lines, cache, f"multi30k-use-m3.{split}.{language}")
        item = np.array([f"{split}:{i}" for i in range(len(lines))])
        if language == PIVOT:
            parts.append(EmbeddingSet(x, modality="image", item=item))
        else:
            parts.append(EmbeddingSet(x, modality="text", item=item, language=language))
    return EmbeddingSet.concat(parts)
