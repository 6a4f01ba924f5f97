"""FaissRetriever: inner-product search through a faiss index (exact flat, IVF or HNSW)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.atomic import atomic_path, write_text
from xcm_debias.data import EmbeddingSet
from xcm_debias.fingerprint import content_fingerprint
from xcm_debias.retrieval import ExactRetriever, Ranking
from xcm_debias.ties import DuplicateRows, duplicate_rows, expand_topk, order_ties

INDEX_KINDS = ("flat", "ivf", "hnsw")


def _faiss():  # imported lazily: faiss is only needed by this retriever
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("FaissRetriever needs faiss: pip install faiss-cpu") from exc
    return faiss


def gallery_fingerprint(gallery: EmbeddingSet) -> str:
    """A content fingerprint of every row and every id (a cached index is reused only for a
    gallery with the same bytes; see :mod:`xcm_debias.fingerprint`)."""
    return content_fingerprint(gallery, columns=("id",))


class FaissRetriever:
    """Inner-product retrieval through a faiss index built from the gallery.

    ``index="flat"`` is exact (``IndexFlatIP``); ``"ivf"`` (``IVF{nlist},Flat``, ``nprobe``
    lists visited) and ``"hnsw"`` (``HNSW{hnsw_m}``, ``ef_search``) are approximate. The index of
    the last gallery searched is cached (keyed by a content fingerprint), so repeated searches
    against one gallery build it once. Score offsets of the score-level methods are folded in
    by ``Debiased`` as an extra coordinate, so any of these index kinds applies them exactly.

    Args:
        index: ``"flat"``, ``"ivf"`` or ``"hnsw"``.
        normalize: L2-normalise queries and gallery (cosine similarity).
        nlist: IVF lists (default ``4·√N``, at most N/39 as faiss wants ≥ 39 points per list).
        nprobe: IVF lists searched per query.
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search beam.
        threads: faiss OpenMP threads (default: faiss's own).

    Ties come by lower gallery index and equal gallery rows score equally (the index holds
    each distinct row once), as with ``ExactRetriever``. With ``index="flat"`` (exact) the
    retriever also has ``rank_of``, counted blockwise like ``ExactRetriever.rank_of`` instead
    of by a full-length search (which took about 20x longer on a 200k gallery); approximate
    indexes have none, so callers rank through ``search``.
    """

    def __init__(
        self,
        index: str = "flat",
        normalize: bool = True,
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        threads: int | None = None,
    ) -> None:
        if index not in INDEX_KINDS:
            raise ValueError(f"index: expected one of {INDEX_KINDS}, got {index!r}")
        self.index = index
        self.normalize = bool(normalize)
        self.nlist = None if nlist is None else check_positive_int(nlist, "nlist")
        self.nprobe = check_positive_int(nprobe, "nprobe")
        self.hnsw_m = check_positive_int(hnsw_m, "hnsw_m", minimum=2)
        self.ef_search = check_positive_int(ef_search, "ef_search")
        self.threads = None if threads is None else check_positive_int(threads, "threads")
        if index == "flat":  # exact: full ranks need no search (see the class docstring)
            self.rank_of = self._exact_rank_of
        self._cached: tuple[str, object] | None = None
        self._groups: tuple[str, DuplicateRows | None] | None = None

    def __repr__(self) -> str:
        return f"FaissRetriever(index={self.index!r}, normalize={self.normalize})"

    def _matrix(self, data: EmbeddingSet) -> np.ndarray:
        x = data.normalized().embeddings if self.normalize else data.embeddings
        return np.ascontiguousarray(x.detach().float().cpu().numpy())

    def build(self, gallery: EmbeddingSet) -> object:
        """Build (or return the cached) faiss index of ``gallery``."""
        if not isinstance(gallery, EmbeddingSet):
            raise TypeError(f"gallery: expected an EmbeddingSet, got {type(gallery).__name__}")
        key = gallery_fingerprint(gallery)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        faiss = _faiss()
        if self.threads is not None:
            faiss.omp_set_num_threads(self.threads)
        x, groups = self._distinct_rows(gallery)
        n, d = x.shape
        if self.index == "flat":
            index = faiss.IndexFlatIP(d)
        elif self.index == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
        else:
            nlist = self.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
            index = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            faiss.extract_index_ivf(index).nprobe = min(self.nprobe, nlist)
        index.add(x)
        self._cached = (key, index)
        self._groups = (key, groups)
        return index

    def _distinct_rows(self, gallery: EmbeddingSet) -> tuple[np.ndarray, DuplicateRows | None]:
        """The gallery matrix with each distinct row once, and its duplicate groups (None when
        every row is distinct): equal rows then score equally (see :mod:`xcm_debias.ties`)."""
        x = self._matrix(gallery)
        groups = duplicate_rows(torch.from_numpy(x))
        return (x, None) if groups is None else (x[groups.first.numpy()], groups)

    def _gallery_groups(self, gallery: EmbeddingSet, key: str) -> DuplicateRows | None:
        """The duplicate groups of the gallery the cached index serves (recomputed after
        ``load_index``, which restores the index alone)."""
        if self._groups is None or self._groups[0] != key:
            self._groups = (key, self._distinct_rows(gallery)[1])
        return self._groups[1]

    def _ranked(
        self, index: object, gallery: EmbeddingSet, queries: np.ndarray, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Search ``index`` and order ties by lower gallery index, equal rows expanded."""
        assert self._cached is not None  # build(gallery) just cached this gallery's index
        groups = self._gallery_groups(gallery, self._cached[0])
        n_index = len(gallery) if groups is None else len(groups.first)
        scores, idx = index.search(queries, min(k, n_index))  # type: ignore[attr-defined]
        if (idx < 0).any():
            raise RuntimeError(
                f"FaissRetriever({self.index!r}) found fewer than k={k} neighbours for some "
                "queries; raise nprobe / ef_search"
            )
        # faiss orders equal scores arbitrarily (a heap): lower index first, as ExactRetriever
        indices, values = order_ties(
            torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(scores)
        )
        if groups is not None:
            indices, values = expand_topk(groups, indices, values, k)
        return indices, values

    def _exact_rank_of(
        self, queries: EmbeddingSet, gallery: EmbeddingSet, targets: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """1-based rank of gallery row ``targets[i]`` for query i (``rank_of`` of a flat index)."""
        return ExactRetriever(normalize=self.normalize).rank_of(queries, gallery, targets)

    def search(self, queries: EmbeddingSet, gallery: EmbeddingSet, k: int) -> Ranking:
        """Top-``k`` gallery rows per query (``k`` capped at the gallery size)."""
        if not isinstance(queries, EmbeddingSet):
            raise TypeError(f"queries: expected an EmbeddingSet, got {type(queries).__name__}")
        k = check_positive_int(k, "k")
        index = self.build(gallery)
        if queries.dim != gallery.dim:
            raise ValueError(
                f"gallery: expected dimension {queries.dim} (as queries), got {gallery.dim}"
            )
        indices, scores = self._ranked(index, gallery, self._matrix(queries), k)
        return Ranking(indices=indices, scores=scores)

    def save_index(self, path: str | Path) -> Path:
        """Write the cached index (faiss's own binary format) and its gallery fingerprint."""
        if self._cached is None:
            raise RuntimeError(
                "FaissRetriever.save_index: no index built yet; call build(gallery) first"
            )
        path = Path(path)
        with atomic_path(path) as tmp:
            _faiss().write_index(self._cached[1], str(tmp))
        write_text(path.with_suffix(path.suffix + ".fingerprint"), self._cached[0])
        return path

    def load_index(self, path: str | Path) -> FaissRetriever:
        """Load an index saved by ``save_index``; it serves the gallery it was built from."""
        path = Path(path)
        stamp = path.with_suffix(path.suffix + ".fingerprint")
        if not path.exists() or not stamp.exists():
            raise FileNotFoundError(f"path: expected {path} and {stamp} written by save_index")
        self._cached = (stamp.read_text().strip(), _faiss().read_index(str(path)))
        return self
