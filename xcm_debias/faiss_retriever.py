"""FaissRetriever: inner-product search through a faiss index: a factory string or your own index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.atomic import atomic_path, write_text
from xcm_debias.data import EmbeddingSet
from xcm_debias.fingerprint import content_fingerprint
from xcm_debias.plain_vectors import as_embedding_set
from xcm_debias.retrieval import ExactRetriever, Ranking
from xcm_debias.ties import DuplicateRows, duplicate_rows, expand_topk, order_ties

INDEX_KINDS = ("flat", "ivf", "hnsw")
_WRAPPED_MIN_COSINE = 0.9
_PROBE_DIMS = (64, 96, 128, 256, 384, 512, 768, 1024)


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
    """Inner-product retrieval through a faiss index built from the gallery, or through yours.

    ``index`` is one of

    * a short name: ``"flat"`` is exact (``IndexFlatIP``); ``"ivf"`` (``IVF{nlist},Flat``,
      ``nprobe`` lists visited) and ``"hnsw"`` (``HNSW{hnsw_m}``, ``ef_search``) are approximate;
    * any `faiss factory string <https://github.com/facebookresearch/faiss/wiki/The-index-factory>`_
      (``"IVF4,Flat"``, ``"HNSW32"``, ``"Flat"``, ``"IVF256,PQ16"``...), built with the inner
      product metric and trained on the gallery when it needs training; ``nprobe`` and
      ``ef_search`` are applied where the index has them;
    * an existing ``faiss.Index`` with the inner product metric, e.g. the ``knn.index`` that
      clip-retrieval / autofaiss build (``faiss.read_index(path)``). It is not rebuilt: it serves
      the gallery it was built from, which ``search`` still takes (same rows, same order, for
      their labels). Where the index can reconstruct vectors, a strided sample of them is checked
      against the gallery (cosine ≥ 0.9), so a processed or different gallery is refused
      rather than searched with stale vectors; a wrapped index therefore cannot serve
      ``Debiased`` stages that change or extend the gallery vectors: use a factory string there.

    The index of the last gallery searched is cached (keyed by a content fingerprint), so
    repeated searches against one gallery build it once. Score offsets of the score-level methods
    are folded in by ``Debiased`` as an extra coordinate, so any built index applies them exactly.
    Queries and gallery may be EmbeddingSets or plain ``[N, D]`` numpy arrays / torch tensors.

    Args:
        index: a short name, a faiss factory string or a ``faiss.Index`` (see above).
        normalize: L2-normalise queries and gallery (cosine similarity).
        nlist: IVF lists of ``"ivf"`` (default ``4·√N``, at most N/39 as faiss wants ≥ 39 points
            per list).
        nprobe: IVF lists searched per query.
        hnsw_m: HNSW graph degree of ``"hnsw"``.
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
        self.index = _check_index_spec(index)
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
        shown = self.index if isinstance(self.index, str) else f"<{type(self.index).__name__}>"
        return f"FaissRetriever(index={shown!r}, normalize={self.normalize})"

    def _matrix(self, data: EmbeddingSet) -> np.ndarray:
        x = data.normalized().embeddings if self.normalize else data.embeddings
        return np.ascontiguousarray(x.detach().float().cpu().numpy())

    def build(self, gallery: EmbeddingSet | np.ndarray | torch.Tensor) -> object:
        """Build (or return the cached, or the wrapped) faiss index of ``gallery``."""
        gallery = as_embedding_set(gallery, "gallery", "image")
        key = gallery_fingerprint(gallery)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        faiss = _faiss()
        if self.threads is not None:
            faiss.omp_set_num_threads(self.threads)
        if not isinstance(self.index, str):  # the caller's index holds every row as it is
            index, groups = _checked_wrapped_index(self.index, self._matrix(gallery)), None
        else:
            x, groups = self._distinct_rows(gallery)
            index = self._new_index(x)
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
        if not isinstance(self.index, str):
            return None  # a wrapped index holds every row, duplicates included
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
        want = min(k, n_index)
        scores, idx = _search_past_ties(index, queries, want, n_index)
        if (idx[:, :want] < 0).any():
            raise RuntimeError(
                f"FaissRetriever({self.index!r}) found fewer than k={k} neighbours for some "
                "queries; raise nprobe / ef_search"
            )
        # faiss orders equal scores arbitrarily (a heap): lower index first, as ExactRetriever
        indices, values = order_ties(
            torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(scores)
        )
        indices, values = indices[:, :want].contiguous(), values[:, :want].contiguous()
        if groups is not None:
            indices, values = expand_topk(groups, indices, values, k)
        return indices, values

    def _exact_rank_of(
        self, queries: EmbeddingSet, gallery: EmbeddingSet, targets: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """1-based rank of gallery row ``targets[i]`` for query i (``rank_of`` of a flat index)."""
        return ExactRetriever(normalize=self.normalize).rank_of(queries, gallery, targets)

    def _new_index(self, x: np.ndarray) -> object:
        """An empty (trained) inner-product index for the rows ``x``, per ``self.index``."""
        faiss = _faiss()
        n, d = x.shape
        if self.index == "flat":
            return faiss.IndexFlatIP(d)
        if self.index == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
            return index
        if self.index == "ivf":
            nlist = self.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))
            index = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            faiss.extract_index_ivf(index).nprobe = min(self.nprobe, nlist)
            return index
        try:
            index = faiss.index_factory(d, self.index, faiss.METRIC_INNER_PRODUCT)
            if not index.is_trained:
                index.train(x)
        except RuntimeError as exc:
            raise ValueError(
                f"index: faiss could not build {self.index!r} for {n} gallery rows of dimension "
                f"{d}: {str(exc).strip().splitlines()[-1]}"
            ) from exc
        _set_search_parameters(index, nprobe=self.nprobe, efSearch=self.ef_search)
        return index

    def search(
        self,
        queries: EmbeddingSet | np.ndarray | torch.Tensor,
        gallery: EmbeddingSet | np.ndarray | torch.Tensor,
        k: int,
    ) -> Ranking:
        """Top-``k`` gallery rows per query (``k`` capped at the gallery size)."""
        queries = as_embedding_set(queries, "queries", "text")
        gallery = as_embedding_set(gallery, "gallery", "image")
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
        path.parent.mkdir(parents=True, exist_ok=True)
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


def _search_past_ties(
    index: object, queries: np.ndarray, want: int, n_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` for at least ``want`` neighbours, and further while a query's score
    at the ``want``-th place ties with the last one fetched: faiss keeps an arbitrary member of
    a tie that straddles the cut, and the lower-index one must be among the lists that
    ``order_ties`` sorts."""
    fetch = min(n_index, want + 1)
    while True:
        scores, idx = index.search(queries, fetch)  # type: ignore[attr-defined]
        if fetch >= n_index or not (scores[:, fetch - 1] == scores[:, want - 1]).any():
            return scores, idx
        fetch = min(n_index, 2 * fetch)


def _check_index_spec(index: object) -> object:
    """``index`` if it is a short name, a non-empty factory string or a faiss.Index."""
    if isinstance(index, str):
        if not index.strip():
            raise ValueError(
                f"index: expected one of {INDEX_KINDS}, a faiss factory string or a faiss.Index, "
                "got an empty string"
            )
        if index not in INDEX_KINDS:
            _check_factory_string(index)
        return index
    faiss = _faiss()
    if not isinstance(index, faiss.Index):
        raise TypeError(
            f"index: expected one of {INDEX_KINDS}, a faiss factory string or a faiss.Index, "
            f"got {type(index).__name__}"
        )
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(
            "index: expected a faiss.Index with the inner product metric (METRIC_INNER_PRODUCT), "
            f"got metric_type {index.metric_type}; rebuild it with faiss.METRIC_INNER_PRODUCT"
        )
    if index.ntotal == 0:
        raise ValueError("index: expected a faiss.Index holding the gallery rows, got an empty one")
    return index


def _check_factory_string(spec: str) -> None:
    """Raise ValueError unless faiss builds ``spec`` for one of a few common dimensions."""
    faiss = _faiss()
    error = ""
    for d in _PROBE_DIMS:  # a factory string may fit some dimensions only (PQ16 needs 16 | d)
        try:
            faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
            return
        except RuntimeError as exc:
            error = str(exc).strip().splitlines()[-1]
    raise ValueError(
        f"index: expected one of {INDEX_KINDS}, a faiss factory string (e.g. 'IVF4,Flat', "
        f"'HNSW32') or a faiss.Index, got {spec!r} ({error})"
    )


def _checked_wrapped_index(index: object, x: np.ndarray) -> object:
    """The wrapped ``index`` if it holds the gallery rows ``x`` (size, dimension, sample)."""
    n, d = x.shape
    if (index.ntotal, index.d) != (n, d):
        raise ValueError(
            f"gallery: expected the {index.ntotal} rows of dimension {index.d} the wrapped faiss "
            f"index was built from, got {n} rows of dimension {d}"
        )
    rows = np.unique(np.linspace(0, n - 1, num=min(n, 16)).astype(np.int64))
    try:
        stored = np.stack([index.reconstruct(int(i)) for i in rows])
    except RuntimeError:  # this index type cannot reconstruct: nothing to compare
        return index
    given = x[rows]
    cosine = (stored * given).sum(1) / (
        np.linalg.norm(stored, axis=1) * np.linalg.norm(given, axis=1) + 1e-12
    )
    worst = int(cosine.argmin())
    if cosine[worst] < _WRAPPED_MIN_COSINE:
        raise ValueError(
            f"gallery: expected the rows the wrapped faiss index holds, but gallery row "
            f"{int(rows[worst])} differs from the index's (cosine {cosine[worst]:.3f}); a wrapped "
            "index serves only its own gallery (for processed galleries, pass a factory string)"
        )
    return index


def _set_search_parameters(index: object, **values: int) -> None:
    """Set each faiss search parameter (``nprobe``, ``efSearch``) the index has."""
    space = _faiss().ParameterSpace()
    for name, value in values.items():
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError:  # the index has no such parameter (e.g. nprobe on HNSW)
            continue
