"""Languages of text rows read from their strings, where the rows still carry them.

A text row encoded by the library keeps its string in the extra column ``caption``
(:mod:`xcm_debias.encoders`; the world's captions carry it too), so a search-time query or
caption gallery without a ``language`` label usually still has the text it came from. The
language is a property of that string, and a language identifier on the string
(:func:`xcm_debias.langid.identify_languages`, py3langid restricted to the calibration
languages) is more reliable than one on the embedding: a multilingual encoder is trained to
make translations coincide, so what is left of the language in the vector is a small residual.
Measured on the embedded world v3 (test captions, 2160 per seed): every classifier family tried
on the embeddings (LDA at several shrinkages, multinomial logistic regression at several ``C``,
linear and RBF SVMs, an MLP, nearest centroid, kNN) misidentifies at least 6 captions of seed 0
(the shipped LDA 10, 3 and 0 on seeds 0–2), while the restricted identifier on the strings
misidentifies none on any seed (``benchmarks/label_inference.py``). So
:meth:`~xcm_debias.calibration.labels.LabelModels.fill` identifies a text row's language from
its string when the row has one, and falls back to the embedding classifier for rows without a
string, when the ``langid`` extra (py3langid) is not installed, or when a calibration language is
not one the identifier knows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xcm_debias.data import EmbeddingSet

#: the extra column in which the encoders keep a text row's string
TEXT_COLUMN = "caption"


def languages_from_text(
    data: EmbeddingSet, classes: Sequence[str], column: str = TEXT_COLUMN
) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of ``data`` whose language is read from their string, and which class it is.

    Args:
        data: rows (texts) whose ``column`` extra holds each row's string (``""``/missing: none).
        classes: the languages a row can be in (the calibration languages, any spelling).
        column: the extra column holding the strings.

    Returns:
        ``(rows, codes)``: a bool mask of the rows with a non-empty string and, for each of them,
        the index among ``classes`` of its identified language; ``None`` when no row has a
        string, the ``langid`` extra is not installed, or a class is not a language the
        identifier knows (the caller then infers from the embeddings).
    """
    if not isinstance(data, EmbeddingSet):
        raise TypeError(f"data: expected an EmbeddingSet, got {type(data).__name__}")
    if not isinstance(column, str) or not column:
        raise TypeError(f"column: expected a non-empty column name, got {column!r}")
    names = [str(c) for c in classes]
    if len(names) < 2:
        raise ValueError(f"classes: expected at least 2 languages, got {names}")
    strings = data.extra.get(column)
    if strings is None:
        return None
    rows = np.array([isinstance(s, str) and bool(s.strip()) for s in strings], dtype=bool)
    if not rows.any():
        return None
    try:
        from xcm_debias.langid import identify_languages

        found = identify_languages([str(s) for s in strings[rows]], names)
    except (ImportError, ValueError):  # no py3langid; a class it does not know
        return None
    codes = np.asarray([names.index(language) for language in found], dtype=np.int64)
    return rows, codes


__all__ = ["TEXT_COLUMN", "languages_from_text"]
