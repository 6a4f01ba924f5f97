"""The processed galleries a :class:`~xcm_debias.debiased.Debiased` keeps between searches.

``Debiased.search`` transforms a gallery once and keeps the processed rows, with what it
prepares from them per retrieval direction (the score-stage columns), for the next searches on
the same gallery. An entry is keyed by the caller's gallery object and checked against a
fingerprint of all its bytes (:func:`xcm_debias.fingerprint.content_fingerprint`): an edit, even
through a numpy array sharing the gallery's memory, rebuilds it. The cache never holds a strong
reference to the caller's object (it would never be collected): a weak-reference finaliser drops
the entry when the object is garbage-collected. At most ``size`` entries (4) are kept, the least
recently used going first — each a few times its gallery's size; ``clear`` releases them all.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.fingerprint import content_fingerprint

CACHE_SIZE = 4

Prepared = TypeVar("Prepared")
Transform = Callable[[EmbeddingSet], EmbeddingSet]


@dataclass
class _Entry(Generic[Prepared]):
    """A cached gallery: a weak reference to the caller's object, the fingerprint of its
    content, the processed rows (None when the transform leaves it unchanged), what was prepared
    from them per key, and the finaliser that evicts the entry with the object."""

    ref: weakref.ref
    fingerprint: str
    processed: EmbeddingSet | None
    finalizer: weakref.finalize
    prepared: dict[str, Prepared] = field(default_factory=dict)


class GalleryCache(Generic[Prepared]):
    """Up to ``size`` processed galleries, each kept only while the caller's object lives."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = check_positive_int(size, "size")
        self._entries: OrderedDict[int, _Entry[Prepared]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Release every entry at once."""
        for entry in self._entries.values():
            entry.finalizer.detach()
        self._entries.clear()

    def processed(self, gallery: EmbeddingSet, transform: Transform) -> EmbeddingSet:
        """``transform(gallery)``, computed once per gallery content."""
        processed = self._entry(gallery, transform).processed
        return gallery if processed is None else processed

    def prepared(
        self,
        gallery: EmbeddingSet,
        key: str,
        transform: Transform,
        prepare: Callable[[EmbeddingSet], Prepared],
    ) -> Prepared:
        """``prepare(transform(gallery))`` under ``key``, computed once per gallery content."""
        entry = self._entry(gallery, transform)
        if key not in entry.prepared:
            entry.prepared[key] = prepare(gallery if entry.processed is None else entry.processed)
        return entry.prepared[key]

    def _entry(self, gallery: EmbeddingSet, transform: Transform) -> _Entry[Prepared]:
        """The entry of ``gallery``: keyed by the object, checked against its fingerprint."""
        if not isinstance(gallery, EmbeddingSet):
            raise TypeError(f"gallery: expected an EmbeddingSet, got {type(gallery).__name__}")
        fingerprint = content_fingerprint(gallery)
        key = id(gallery)
        entry = self._entries.get(key)
        if entry is None or entry.ref() is not gallery or entry.fingerprint != fingerprint:
            if entry is not None:
                entry.finalizer.detach()
            processed = transform(gallery)
            entry = _Entry(
                weakref.ref(gallery),
                fingerprint,
                # never a strong reference to the caller's object: it would never be collected
                None if processed is gallery else processed,
                weakref.finalize(gallery, _evict, weakref.ref(self), key),
            )
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)[1].finalizer.detach()
        self._entries.move_to_end(key)
        return entry


def _evict(owner: weakref.ref, key: int) -> None:
    """Drop the entry ``key`` of ``owner()`` (a GalleryCache) whose gallery was collected."""
    cache = owner()
    if cache is not None:
        entry = cache._entries.get(key)
        if entry is not None and entry.ref() is None:
            del cache._entries[key]
