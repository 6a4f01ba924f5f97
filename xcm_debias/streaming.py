"""Streaming a fitted pipeline over embedding shards in constant memory, resumably.

Input: a clip-retrieval folder (``img_emb/img_emb_<n>.npy``, ``text_emb/text_emb_<n>.npy``,
``metadata/metadata_<n>.parquet``) or a folder of ``*.npy`` shards with optional
``<name>.parquet`` label files beside them. Each shard is memory-mapped and transformed in
row batches, written with the input's float dtype (float16 stays float16).

Safety:

* every output file is written atomically (:mod:`xcm_debias.atomic`): the full size is
  reserved on disk first (a full disk fails at once with :class:`DiskFullError`), the rows go
  to a temporary file beside the target, which is fsynced and renamed into place; a failure
  removes the temporary file and leaves any previous output intact;
* the output folder holds a manifest (``xcm_debias_manifest.json``): the SHA-256 of the
  pipeline (its config and tensors), and per shard the SHA-256 of its input file and label
  file, its output shape and dtype and the SHA-256 of the output file. A rerun skips a shard
  only when all of these still match (a changed input, a truncated or emptied output is
  redone); a folder written by another pipeline, or holding shards without a manifest, is
  refused unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from xcm_debias._validation import check_positive_int
from xcm_debias.atomic import atomic_path, disk_full_error, is_disk_full, write_text
from xcm_debias.data import EmbeddingSet
from xcm_debias.fitted import content_hash
from xcm_debias.npfiles import load_numpy
from xcm_debias.processors.base import PostProcessor

_MODALITY_OF_FOLDER = {"img_emb": "image", "text_emb": "text"}
MANIFEST = "xcm_debias_manifest.json"
_KEPT_DTYPES = (np.float16, np.float32, np.float64)


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
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output: expected a folder, got the existing file {str(output_dir)!r}")
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(f"output: expected a folder other than the input, got {str(output_dir)!r}")
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


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 16 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def pipeline_digest(pipeline: PostProcessor) -> str:
    """SHA-256 of a fitted pipeline's config and tensors (as its saved file's content hash)."""
    tensors = {k: v.detach().cpu() for k, v in pipeline.state_dict().items()}
    return content_hash(json.dumps(pipeline.to_config(), sort_keys=True), tensors)


def _output_dtype(source: np.ndarray) -> np.dtype:
    """The input's float dtype (float16/32/64), float32 for anything else."""
    return source.dtype if source.dtype.type in _KEPT_DTYPES else np.dtype(np.float32)


def _finite_rows(x: np.ndarray, shard: Shard, start: int) -> np.ndarray:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{shard.source}: expected finite values, got NaN or inf in row "
            f"{start + int(np.flatnonzero(bad)[0])} ({int(bad.sum())} bad row(s) in rows "
            f"{start}..{start + len(x) - 1})"
        )
    return x


def _reserve(f: object, size: int, path: Path) -> None:
    """Allocate ``size`` bytes for real (no sparse file), so a full disk fails before writing."""
    try:
        os.posix_fallocate(f.fileno(), 0, size)  # type: ignore[attr-defined]
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from exc
        # file systems without fallocate (EOPNOTSUPP...): the writes report a full disk
    except AttributeError:  # pragma: no cover - no posix_fallocate (Windows, macOS)
        pass


def _write_block(f: object, block: np.ndarray) -> None:
    f.write(np.ascontiguousarray(block).data)  # type: ignore[attr-defined]


def transform_shard(pipeline: PostProcessor, shard: Shard, batch_size: int = 65536) -> Path:
    """Transform one shard into ``shard.target`` atomically; returns the target path.

    The output keeps the input's float dtype. Raises ValueError naming the shard for an empty
    shard, non-finite rows (with the row number in the shard) or a dimension the pipeline was
    not fitted on, and :class:`xcm_debias.atomic.DiskFullError` when the disk is full (the
    previous target, if any, is then unchanged and no temporary file is left).
    """
    source = load_numpy(shard.source, mmap_mode="r")
    if not isinstance(source, np.ndarray) or source.ndim != 2:
        raise ValueError(
            f"{shard.source}: expected a 2-D embedding array, got shape "
            f"{getattr(source, 'shape', type(source).__name__)}"
        )
    if source.shape[0] == 0 or source.shape[1] == 0:
        raise ValueError(
            f"{shard.source}: expected a non-empty [N, D] shard, got shape {source.shape}; "
            "remove the empty shard (and its metadata) from the input"
        )
    labels = _labels(shard, source.shape[0])
    dtype = _output_dtype(source)
    with atomic_path(shard.target) as partial, open(partial, "wb") as f:
        header_written = False
        for rows in _batches(source.shape[0], batch_size):
            x = _finite_rows(np.array(source[rows], dtype=np.float32), shard, rows.start)
            batch = EmbeddingSet(
                torch.from_numpy(x),
                modality=shard.modality,
                **{k: v[rows] for k, v in labels.items()},
            )
            try:
                y = pipeline.transform(batch).embeddings.numpy().astype(dtype, copy=False)
            except ValueError as exc:
                raise ValueError(f"{shard.source}: {exc}") from None
            if not header_written:
                shape = (source.shape[0], y.shape[1])
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
                np.lib.format.write_array_header_1_0(f, {**header, "shape": shape})
                _reserve(f, f.tell() + shape[0] * shape[1] * dtype.itemsize, shard.target)
                header_written = True
            _write_block(f, y)
    return shard.target


class FolderRun(list):
    """The output shard paths of :func:`transform_folder` (a list), and what the run did:
    ``skipped`` (outputs verified by the manifest and kept) and ``redone`` (path -> why the
    existing output could not be kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list[Path] = []
        self.redone: dict[Path, str] = {}


def _read_manifest(output_dir: Path, digest: str, overwrite: bool) -> dict:
    """The manifest of ``output_dir`` for pipeline ``digest`` (a fresh one when absent)."""
    fresh: dict = {"format": 1, "pipeline": digest, "shards": {}}
    path = output_dir / MANIFEST
    if not path.exists():
        stray = [p for p in output_dir.rglob("*.npy")] if output_dir.is_dir() else []
        if stray and not overwrite:
            raise ValueError(
                f"output: {output_dir} already holds .npy files ({stray[0].name}...) but no "
                f"{MANIFEST}, so they cannot be verified; choose a new folder, or overwrite "
                "them (--force / overwrite=True)"
            )
        return fresh
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), dict):
        if not overwrite:
            raise ValueError(f"output: {path} is damaged; overwrite (--force / overwrite=True)")
        return fresh
    if manifest.get("pipeline") != digest:
        if not overwrite:
            raise ValueError(
                f"output: {output_dir} holds shards of another pipeline (sha256 "
                f"{str(manifest.get('pipeline'))[:12]}..., this one {digest[:12]}...); choose a "
                "new folder, or overwrite them (--force / overwrite=True)"
            )
        return fresh
    return manifest


def _shard_record(shard: Shard) -> dict:
    return {
        "input": file_digest(shard.source),
        "labels": None if shard.labels is None else file_digest(shard.labels),
    }


def _stale_reason(shard: Shard, record: dict | None, expected: dict) -> str | None:
    """Why the existing output of ``shard`` cannot be kept (None when it is verified)."""
    if not shard.target.exists():
        return None if record is None else "output missing"
    if record is None:
        return "not in the manifest"
    if record.get("input") != expected["input"] or record.get("labels") != expected["labels"]:
        return "input changed"
    if file_digest(shard.target) != record.get("output"):
        return "output damaged (truncated or changed)"
    return ""


def transform_folder(
    pipeline: PostProcessor | str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    modality: str | None = None,
    batch_size: int = 65536,
    progress: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> FolderRun:
    """Stream every shard of ``input_dir`` through a fitted pipeline into ``output_dir``.

    Returns the output shard paths (a list, as before) with ``skipped`` and ``redone``. A
    rerun skips the shards whose output the manifest verifies (same pipeline, same input and
    label files, output bytes as written) and redoes the others; see the module docstring.
    ``overwrite=True`` redoes everything in a folder written by another pipeline. ``log``
    receives one line per skipped or redone shard. Metadata shards are copied alongside so the
    output is again a clip-retrieval folder. Memory: one batch at a time.
    """
    if not isinstance(pipeline, PostProcessor):
        pipeline = PostProcessor.load(pipeline)
    pipeline.check_is_fitted()
    batch_size = check_positive_int(batch_size, "batch_size")
    shards = find_shards(input_dir, output_dir, modality)
    output_dir = Path(output_dir)
    manifest = _read_manifest(output_dir, pipeline_digest(pipeline), overwrite)
    run = FolderRun()
    for shard in tqdm(shards, desc="transform", unit="shard", disable=not progress):
        key = shard.target.relative_to(output_dir).as_posix()
        expected = _shard_record(shard)
        reason = _stale_reason(shard, manifest["shards"].get(key), expected)
        if reason == "":
            run.skipped.append(shard.target)
            if log is not None:
                log(f"skipped {key}: verified output of this pipeline and input")
        else:
            if reason is not None:
                run.redone[shard.target] = reason
                if log is not None:
                    log(f"redoing {key}: {reason}")
            transform_shard(pipeline, shard, batch_size)
            out = load_numpy(shard.target, mmap_mode="r")
            manifest["shards"][key] = {
                **expected,
                "shape": list(out.shape),
                "dtype": str(out.dtype),
                "output": file_digest(shard.target),
            }
            del out
            write_text(output_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        run.append(shard.target)
        if shard.labels is not None and shard.labels.parent.name == "metadata":
            copy = output_dir / "metadata" / shard.labels.name
            content = shard.labels.read_bytes()
            if not copy.exists() or copy.read_bytes() != content:
                with atomic_path(copy) as tmp:
                    tmp.write_bytes(content)
    return run
