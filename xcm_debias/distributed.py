"""A fitted pipeline as a Dask batch map, for galleries beyond one machine.

``transform_dask(pipeline, embeddings, modality=..., language=..., ...)`` returns a lazy Dask
array: every row block of ``embeddings`` (with the same row block of each label array) becomes
an :class:`~xcm_debias.data.EmbeddingSet` and goes through ``pipeline.transform``. It is built
with ``dask.array.blockwise``, so it runs unchanged on Dask's local schedulers (threads,
processes) and on a ``dask.distributed`` cluster, and composes with the rest of a Dask graph
(``da.from_npy_stack``/``da.from_zarr`` in, ``da.to_npy_stack``/``to_zarr`` out).

Why Dask (over Ray Data ``map_batches`` or Spark ``mapInArrow``): it is pure Python with a
small dependency footprint (no JVM, no cluster daemon), its local scheduler runs in CI on two
cores, its arrays are chunked numpy arrays — exactly the ``img_emb_<n>.npy`` shards of
clip-retrieval — and the same graph scales out by pointing a ``dask.distributed.Client`` at a
cluster. Post-processors are row-wise (each row's output depends on its own embedding and
labels and on the fitted state), so a block map is exact: the result equals the in-process
``pipeline.transform`` of the whole set.

Every block checks its labels through ``pipeline.transform``; before building the graph, the
pipeline's fitted state, the labels it needs and the embedding dimension (one probe row) are
checked eagerly, so a wrong input fails here, not deep inside a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import MODALITIES, EmbeddingSet
from xcm_debias.debiased import Debiased
from xcm_debias.plain_vectors import PlainOrSet, as_vectors
from xcm_debias.processors.base import NotFittedError, PostProcessor
from xcm_debias.retrieval import ExactRetriever, Ranking
from xcm_debias.topk import merge_topk

if TYPE_CHECKING:  # dask is optional at import time of the package
    import dask.array as da

LABELS = ("item", "language", "culture")


def _dask_array():
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - dask is a dependency
        raise ImportError("transform_dask needs dask: pip install 'dask[array]'") from exc
    return da


def _pipeline(pipeline: PostProcessor | Debiased | str | Path) -> PostProcessor | Debiased:
    if isinstance(pipeline, (str, Path)):
        pipeline = PostProcessor.load(pipeline)
    if isinstance(pipeline, Debiased):
        if not pipeline.is_fitted:
            raise NotFittedError("pipeline: expected a fitted Debiased, got one not fitted")
        return pipeline
    if not isinstance(pipeline, PostProcessor):
        raise TypeError(
            "pipeline: expected a fitted PostProcessor, Chain, Debiased or a saved pipeline "
            f"path, got {type(pipeline).__name__}"
        )
    if not pipeline.is_fitted:
        raise NotFittedError(
            f"pipeline: expected a fitted {type(pipeline).__name__}, got one not fitted"
        )
    return pipeline


def _check_float_matrix(value: object, name: str) -> None:
    """A 2-D float Dask array, or an error naming ``name``."""
    da = _dask_array()
    if not isinstance(value, da.Array):
        raise TypeError(f"{name}: expected a dask.array.Array [N, D], got {type(value).__name__}")
    if value.ndim != 2 or not np.issubdtype(value.dtype, np.floating):
        raise ValueError(
            f"{name}: expected a 2-D float Dask array [N, D], got shape {value.shape} and "
            f"dtype {value.dtype}"
        )


def _needs(pipeline: PostProcessor | Debiased) -> tuple[str, ...]:
    processors = pipeline.processors if isinstance(pipeline, Debiased) else pipeline
    return () if processors is None else tuple(processors.needs)


def _block(
    x: np.ndarray, modality: np.ndarray, *labels: np.ndarray, names: tuple[str, ...], pipeline
) -> np.ndarray:
    """One row block through the pipeline (runs on a worker)."""
    data = EmbeddingSet(
        torch.from_numpy(np.array(x, dtype=np.float32)),
        modality=np.asarray(modality).astype(np.str_),
        **{
            name: np.asarray(value).astype(np.str_)
            for name, value in zip(names, labels, strict=True)
        },
    )
    return pipeline.transform(data).embeddings.float().numpy()


def _label_array(value: object, name: str, n: int, row_chunks: tuple[int, ...]) -> da.Array:
    da = _dask_array()
    if isinstance(value, str):
        return da.full(n, value, dtype=f"<U{max(1, len(value))}", chunks=(row_chunks,))
    if isinstance(value, (np.ndarray, list, tuple)):
        value = np.asarray(value).astype(np.str_)
    elif not isinstance(value, da.Array):
        raise TypeError(
            f"{name}: expected a string, a 1-D numpy/Dask array or a list of labels, "
            f"got {type(value).__name__}"
        )
    if value.ndim != 1 or value.shape[0] != n:
        raise ValueError(
            f"{name}: expected a 1-D array of {n} labels (one per embedding row), "
            f"got shape {value.shape}"
        )
    if isinstance(value, np.ndarray):
        return da.from_array(value, chunks=(row_chunks,))
    return value.rechunk((row_chunks,))


def transform_dask(
    pipeline: PostProcessor | Debiased | str | Path,
    embeddings: da.Array,
    *,
    modality: str | object,
    language: str | object | None = None,
    culture: str | object | None = None,
    item: str | object | None = None,
    extra: Mapping[str, object] | None = None,
) -> da.Array:
    """Lazily apply a fitted pipeline to a Dask array of embeddings, block by block of rows.

    Args:
        pipeline: a fitted ``PostProcessor``/``Chain``, a fitted ``Debiased`` (its processors;
            score-level stages change scores, not vectors), or the path of a pipeline saved
            with ``PostProcessor.save``.
        embeddings: ``[N, D]`` Dask array of floats; rows may be chunked freely, columns are
            gathered into one chunk.
        modality: ``"image"``/``"text"`` for every row, or one label per row.
        language, culture, item: labels (one string for all rows, or one per row as a 1-D
            numpy or Dask array); those the pipeline ``needs`` are required.
        extra: further label columns, by name (as ``EmbeddingSet(extra=...)``) — not used by
            the built-in processors; kept for custom ones.

    Returns:
        ``[N, D']`` float32 Dask array (``D' = D`` for every built-in processor), chunked like
        ``embeddings``'s rows. Nothing is computed until ``.compute()``/``.store()``.
    """
    da = _dask_array()
    fitted = _pipeline(pipeline)
    _check_float_matrix(embeddings, "embeddings")
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(
            f"extra: expected a mapping of label name to labels, got {type(extra).__name__}"
        )
    n = int(embeddings.shape[0])
    x = embeddings.rechunk({1: -1})
    row_chunks = x.chunks[0]
    if isinstance(modality, str) and modality not in MODALITIES:
        raise ValueError(f"modality: expected one of {MODALITIES}, got {modality!r}")
    given = {"language": language, "culture": culture, "item": item}
    missing = [label for label in _needs(fitted) if label in given and given[label] is None]
    if missing:
        raise ValueError(
            f"{', '.join(missing)}: the pipeline needs {' and '.join(missing)} labels on the "
            f"rows it transforms ({type(fitted).__name__} needs {_needs(fitted)}); got none"
        )
    columns = {name: value for name, value in given.items() if value is not None}
    columns.update(dict(extra or {}))
    names = tuple(columns)
    labels = [_label_array(value, name, n, row_chunks) for name, value in columns.items()]
    modalities = _label_array(modality, "modality", n, row_chunks)
    probe = _probe(fitted, x, modalities, labels, names)
    args: list[object] = [x, "ij", modalities, "i"]
    for column in labels:
        args += [column, "i"]
    return da.blockwise(
        _block,
        "ij",
        *args,
        dtype=np.float32,
        adjust_chunks={"j": probe},
        names=names,
        pipeline=fitted,
        meta=np.empty((0, 0), dtype=np.float32),
    )


def _probe(
    pipeline: PostProcessor | Debiased,
    x: da.Array,
    modalities: da.Array,
    labels: list[da.Array],
    names: tuple[str, ...],
) -> int:
    """Output width, from the first row run eagerly; a wrong dimension fails here."""
    if x.shape[0] == 0:
        raise ValueError("embeddings: expected at least one row, got 0")
    first = [x[:1].compute(), modalities[:1].compute()] + [c[:1].compute() for c in labels]
    try:
        y = _block(*first, names=names, pipeline=pipeline)
    except (RuntimeError, ValueError) as exc:  # a shape mismatch inside the fitted algebra
        raise ValueError(
            f"embeddings: the pipeline cannot transform rows of dimension {x.shape[1]} "
            f"(is it fitted on another dimension?): {exc}"
        ) from exc
    return int(y.shape[1])


def _part_topk(
    rows: np.ndarray, queries: np.ndarray, k: int, block_size: int, normalize: bool, start: int
) -> tuple[np.ndarray, np.ndarray]:
    """One row block's exact top-k with global indices (runs on a worker)."""
    retriever = ExactRetriever(block_size=block_size, normalize=normalize)
    ranking = retriever.search(torch.from_numpy(queries), torch.from_numpy(np.asarray(rows)), k)
    return ranking.indices.numpy() + start, ranking.scores.numpy()


def search_dask(
    queries: PlainOrSet,
    gallery: da.Array,
    k: int,
    *,
    block_size: int = 2048,
    normalize: bool = True,
) -> Ranking:
    """Exact top-``k`` over a Dask array gallery: each row block searched where it lives,
    the per-block lists merged exactly.

    Every row block of ``gallery`` (a shard: one ``img_emb_<n>.npy`` read with
    ``da.from_array``/``da.from_npy_stack``) becomes one task that runs
    ``ExactRetriever(block_size, normalize).search`` of the queries against its rows and
    returns that block's top-``k`` with global row indices; the client merges the lists with
    :func:`xcm_debias.topk.merge_topk` (ties by lower index). Only ``k`` indices and scores
    per query and block travel back. The queries (prepared once, float32) are one key of the
    graph, shipped once per worker (unit rows stay bit for bit what the in-process search scores). Runs on whatever Dask scheduler is active: the local
    threaded one by default, ``dask.config.set(scheduler="synchronous")``, or a
    ``dask.distributed.Client`` (created before the call).

    Equal to the in-process ``ExactRetriever().search`` of the concatenated rows: block by
    block the same exact ranking, merged exactly. When every block's row count is a multiple
    of ``block_size``, each block is cut into the very tiles the in-process search uses and
    the scores agree bit for bit; otherwise a score may differ in its last bit (another BLAS
    tile shape), so only rows closer than float32 rounding can swap.

    Args:
        queries: ``[Q, D]`` EmbeddingSet, numpy array or torch tensor.
        gallery: ``[N, D]`` Dask array of floats (float16 is read as stored and converted per
            tile); columns are gathered into one chunk.
        k: results per query (capped at ``N``).
        block_size, normalize: as ``ExactRetriever``.
    """
    _check_float_matrix(gallery, "gallery")  # imports dask (a clear error when it is missing)
    import dask

    q = as_vectors(queries, "queries")
    if q.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"gallery: expected dimension {q.shape[1]} (as queries), got {gallery.shape[1]}"
        )
    k = check_positive_int(k, "k")
    block_size = check_positive_int(block_size, "block_size")
    if gallery.shape[0] == 0:
        raise ValueError("gallery: expected at least one row, got 0")
    prepared = ExactRetriever(block_size, normalize)._prepare(q).numpy()
    shipped = dask.delayed(prepared, pure=True)
    x = gallery.rechunk({1: -1})
    starts = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]]).astype(np.int64)
    tasks = [
        dask.delayed(_part_topk, pure=True)(block, shipped, k, block_size, normalize, int(start))
        for block, start, size in zip(x.to_delayed().ravel(), starts, x.chunks[0], strict=True)
        if size
    ]
    parts = dask.compute(*tasks)
    indices, scores = merge_topk([(torch.from_numpy(i), torch.from_numpy(v)) for i, v in parts], k)
    return Ranking(indices=indices, scores=scores)


__all__ = ["search_dask", "transform_dask"]
