"""Labelled rows shared by the encoders: label checks, languages identified where none is given,
and the texts -> EmbeddingSet plumbing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized

import numpy as np
import torch

from xcm_debias._validation import as_label_array
from xcm_debias.data import EmbeddingSet

Labels = Sequence[object] | np.ndarray | None


def languages_of(
    texts: list[str], language: str | Labels, candidates: Sequence[str] | None
) -> np.ndarray:
    """The language of each of the checked ``texts``: as given (one code, or one per text), and
    identified from the text (``xcm_debias.langid.identify_languages(texts, candidates)``, the
    ``langid`` extra) where none is given: ``language=None``, or ``""``/``None`` entries."""
    n = len(texts)
    given = (
        np.full(n, "", dtype="<U1") if language is None else as_label_array(language, "language", n)
    )
    missing = np.flatnonzero(given == "")
    if len(missing) == 0:
        return given
    from xcm_debias.langid import identify_languages

    found = identify_languages([texts[i] for i in missing.tolist()], candidates)
    out = given.astype(object)
    out[missing] = found
    return out.astype(np.str_)


def check_labels(n: int, **labels: object) -> None:
    """Check label lengths before encoding (``EmbeddingSet`` checks them again after)."""
    extra = labels.pop("extra")
    for name, values in labels.items():
        if values is not None:
            as_label_array(values, name, n)
    for name, column in dict(extra or {}).items():  # type: ignore[call-overload]
        if not isinstance(column, Sized) or len(column) != n:
            raise ValueError(f"extra[{name!r}]: expected {n} values (one per row), got {column!r}")


def text_rows(
    embed: Callable[[], torch.Tensor],
    texts: list[str],
    languages: np.ndarray,
    *,
    item: Labels,
    id: Labels,  # noqa: A002 - EmbeddingSet label name
    culture: str | Labels,
    extra: Mapping[str, Sequence[object] | np.ndarray] | None,
) -> EmbeddingSet:
    """Text rows of checked ``texts``/``languages``: labels are checked first, then ``embed()``
    (the slow part) runs; the texts are kept in the extra column ``caption`` unless given."""
    check_labels(len(texts), item=item, id=id, culture=culture, extra=extra)
    columns = dict(extra or {})
    columns.setdefault("caption", np.asarray(texts, dtype=np.str_))
    return EmbeddingSet(
        embed(),
        modality="text",
        item=item,
        id=id,
        language=languages,
        culture=culture,
        extra=columns,
    )
