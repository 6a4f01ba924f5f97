"""FaissRetriever: inner-product search through a faiss index (exact flat, IVF or HNSW)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.retrieval import Ranking

INDEX_KINDS = ("flat", "ivf", "hnsw")


def _faiss():  # imported lazily: faiss is only needed by this retriever
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("FaissRetriever needs faiss: pip install faiss-cpu") from exc
    return faiss


def gallery_fingerprint(gallery: EmbeddingSet) -> str:
    """A cheap content hash: size, dtype, ids and a strided sample of rows."""
    h = hashlib.blake2b(digest_size=16)
    x = gallery.embeddings
    h.update(f"{tuple(x.shape)}|{x.dtype}".encode())
    h.update("\x00".join(gallery.id.tolist()).encode())
    step = max(1, len(gallery) // 1024)
    h.update(x[::step].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


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
        self._cached: tuple[str, object] | None = None

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
        x = self._matrix(gallery)
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
        return index

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
        scores, idx = index.search(self._matrix(queries), min(k, len(gallery)))
        if (idx < 0).any():
            raise RuntimeError(
                f"FaissRetriever({self.index!r}) found fewer than k={k} neighbours for some queries; "
                "raise nprobe / ef_search"
            )
        return Ranking(
            indices=torch.from_numpy(idx.astype(np.int64)), scores=torch.from_numpy(scores)
        )

    def save_index(self, path: str | Path) -> Path:
        """Write the cached index (faiss's own binary format) and its gallery fingerprint."""
        if self._cached is None:
            raise RuntimeError(
                "FaissRetriever.save_index: no index built yet; call build(gallery) first"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self._cached[1], str(path))
        path.with_suffix(path.suffix + ".fingerprint").write_text(self._cached[0])
        return path

    def load_index(self, path: str | Path) -> FaissRetriever:
        """Load an index saved by ``save_index``; it serves the gallery it was built from."""
        path = Path(path)
        stamp = path.with_suffix(path.suffix + ".fingerprint")
        if not path.exists() or not stamp.exists():
            raise FileNotFoundError(f"path: expected {path} and {stamp} written by save_index")
        self._cached = (stamp.read_text().strip(), _faiss().read_index(str(path)))
        return self
