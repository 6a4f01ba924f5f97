"""Streaming a fitted pipeline over embedding shards in constant memory, resumably.

Input: a clip-retrieval folder (``img_emb/img_emb_<n>.npy``, ``text_emb/text_emb_<n>.npy``,
``metadata/metadata_<n>.parquet``) or a folder of ``*.npy`` shards with optional
``<name>.parquet`` label files beside them. Each shard is memory-mapped and transformed in
row batches; the result is written to a temporary file and renamed into place only when
complete (``os.replace`` is atomic), so a crash never leaves a half-written shard, and a rerun
skips every shard whose output already exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.processors.base import PostProcessor

_MODALITY_OF_FOLDER = {"img_emb": "image", "text_emb": "text"}


@dataclass(frozen=True)
class Shard:
    """One embedding file, the modality of its rows and its optional label table."""

    source: Path
    target: Path
    modality: str
    labels: Path | None


def find_shards(
    input_dir: str | Path, output_dir: str | Path, modality: str | None = None
) -> list[Shard]:
    """List the shards of ``input_dir`` and where each one's output goes."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input: expected a folder of .npy shards, got {str(input_dir)!r}")
    shards: list[Shard] = []
    for folder, folder_modality in _MODALITY_OF_FOLDER.items():
        for src in sorted((input_dir / folder).glob(f"{folder}_*.npy")):
            number = src.stem.rsplit("_", 1)[-1]
            meta = input_dir / "metadata" / f"metadata_{number}.parquet"
            shards.append(
                Shard(
                    src,
                    output_dir / folder / src.name,
                    folder_modality,
                    meta if meta.exists() else None,
                )
            )
    if not shards:
        if modality is None:
            raise ValueError(
                f"input: {input_dir} has no img_emb/ or text_emb/ shards; for a plain folder of "
                ".npy shards pass modality='image' or 'text'"
            )
        for src in sorted(input_dir.glob("*.npy")):
            labels = src.with_suffix(".parquet")
            shards.append(
                Shard(src, output_dir / src.name, modality, labels if labels.exists() else None)
            )
    if not shards:
        raise ValueError(f"input: expected .npy shards in {input_dir}, found none")
    return shards


def _labels(shard: Shard, n_rows: int) -> dict[str, np.ndarray]:
    if shard.labels is None:
        return {}
    table = pq.read_table(shard.labels)
    if table.num_rows != n_rows:
        raise ValueError(
            f"{shard.labels}: expected {n_rows} rows (as {shard.source.name}), got {table.num_rows}"
        )
    wanted = {"language": ("language", "lang"), "culture": ("culture",), "item": ("item",)}
    if shard.modality == "image":
        wanted["language"] = ()
    else:
        wanted["culture"] = ("text_culture",)
    out = {}
    for label, names in wanted.items():
        for name in names:
            if name in table.column_names:
                out[label] = table.column(name).to_numpy(zero_copy_only=False).astype(np.str_)
                break
    return out


def _batches(n_rows: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n_rows, batch_size):
        yield slice(start, min(start + batch_size, n_rows))


def transform_shard(pipeline: PostProcessor, shard: Shard, batch_size: int = 65536) -> Path:
    """Transform one shard into ``shard.target`` atomically; returns the target path."""
    source = np.load(shard.source, mmap_mode="r", allow_pickle=False)
    if source.ndim != 2:
        raise ValueError(
            f"{shard.source}: expected a 2-D embedding array, got shape {source.shape}"
        )
    labels = _labels(shard, source.shape[0])
    shard.target.parent.mkdir(parents=True, exist_ok=True)
    partial = shard.target.with_name(shard.target.name + ".partial")
    out = None
    for rows in _batches(source.shape[0], batch_size):
        batch = EmbeddingSet(
            torch.from_numpy(np.array(source[rows], dtype=np.float32)),
            modality=shard.modality,
            **{k: v[rows] for k, v in labels.items()},
        )
        y = pipeline.transform(batch).embeddings.numpy()
        if out is None:
            out = np.lib.format.open_memmap(
                partial, mode="w+", dtype=np.float32, shape=(source.shape[0], y.shape[1])
            )
        out[rows] = y
    assert out is not None
    out.flush()
    del out
    os.replace(partial, shard.target)
    return shard.target


def transform_folder(
    pipeline: PostProcessor | str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    modality: str | None = None,
    batch_size: int = 65536,
    progress: bool = True,
) -> list[Path]:
    """Stream every shard of ``input_dir`` through a fitted pipeline into ``output_dir``.

    Shards whose output exists are skipped (resume after a crash); metadata shards are copied
    alongside so the output is again a clip-retrieval folder. Memory: one batch at a time.
    """
    if not isinstance(pipeline, PostProcessor):
        pipeline = PostProcessor.load(pipeline)
    pipeline.check_is_fitted()
    batch_size = check_positive_int(batch_size, "batch_size")
    shards = find_shards(input_dir, output_dir, modality)
    written = []
    for shard in tqdm(shards, desc="transform", unit="shard", disable=not progress):
        if not shard.target.exists():
            transform_shard(pipeline, shard, batch_size)
        written.append(shard.target)
        if shard.labels is not None and shard.labels.parent.name == "metadata":
            copy = Path(output_dir) / "metadata" / shard.labels.name
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                tmp = copy.with_name(copy.name + ".partial")
                tmp.write_bytes(shard.labels.read_bytes())
                os.replace(tmp, copy)
    return written
