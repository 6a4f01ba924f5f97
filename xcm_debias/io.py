"""Saving and loading EmbeddingSets: ``.npz``, ``.parquet`` and clip-retrieval folders.

No format uses pickle: labels are unicode arrays, extra columns numbers/booleans/strings.

clip-retrieval layout (``clip-retrieval inference`` output)::

    folder/img_emb/img_emb_0.npy      [n0, D] image embeddings
    folder/text_emb/text_emb_0.npy    [n0, D] caption embeddings (row i pairs with image i)
    folder/metadata/metadata_0.parquet  n0 rows: image_path, caption, ... (+ optional
                                        item, language, culture, image_culture columns)

Each metadata row is one image–caption pair. Without an ``item`` column the pair is its own
item (``"<shard>:<row>"``); a ``language`` column labels the caption, ``culture`` the image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from xcm_debias.atomic import atomic_path
from xcm_debias.data import LABELS, EmbeddingSet
from xcm_debias.npfiles import load_numpy

_EXTRA = "extra."


def save(data: EmbeddingSet, path: str | Path) -> Path:
    """Save by suffix: ``.npz``, ``.parquet``, or a clip-retrieval folder (no suffix)."""
    path = Path(path)
    if path.suffix == ".npz":
        return save_npz(data, path)
    if path.suffix == ".parquet":
        return save_parquet(data, path)
    if path.suffix == "":
        return save_clip_retrieval(data, path)
    raise ValueError(
        f"path: expected a .npz, .parquet or suffix-less folder path, got {str(path)!r}"
    )


def load(path: str | Path) -> EmbeddingSet:
    """Load by suffix: ``.npz``, ``.parquet``, or a clip-retrieval folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no such file or folder: {str(path)!r}")
    if path.is_dir():
        return load_clip_retrieval(path)
    if path.suffix == ".npz":
        return load_npz(path)
    if path.suffix == ".parquet":
        return load_parquet(path)
    raise ValueError(
        f"path: expected a .npz, .parquet or a clip-retrieval folder, got {str(path)!r}"
    )


def _embeddings_numpy(data: EmbeddingSet) -> np.ndarray:
    x = data.embeddings.detach().cpu()
    if x.dtype == torch.bfloat16:
        x = x.float()
    return x.numpy()


def save_npz(data: EmbeddingSet, path: str | Path) -> Path:
    """Write a ``.npz`` atomically (a failed write leaves any previous file intact)."""
    path = Path(path)
    arrays = {"embeddings": _embeddings_numpy(data)}
    arrays.update(data.to_columns())
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_npz(path: str | Path) -> EmbeddingSet:
    with load_numpy(path) as f:
        if "embeddings" not in f.files:
            raise ValueError(f"{path}: expected an 'embeddings' array, found {sorted(f.files)}")
        if "modality" not in f.files:
            raise ValueError(f"{path}: expected a 'modality' column, found {sorted(f.files)}")
        try:
            columns = {k: f[k] for k in f.files}
        except ValueError:
            raise ValueError(
                f"{path}: holds Python objects (pickled), which xcm_debias never loads; save "
                "labels as strings or numbers"
            ) from None
    return _from_columns(torch.from_numpy(columns.pop("embeddings")), columns, str(path))


def save_parquet(data: EmbeddingSet, path: str | Path) -> Path:
    """Write a ``.parquet`` atomically (a failed write leaves any previous file intact)."""
    path = Path(path)
    x = _embeddings_numpy(data)
    flat = pa.array(x.reshape(-1))
    table = pa.table(
        {
            "embedding": pa.FixedSizeListArray.from_arrays(flat, x.shape[1]),
            **{k: pa.array(v) for k, v in data.to_columns().items()},
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def load_parquet(path: str | Path) -> EmbeddingSet:
    table = pq.read_table(Path(path))
    if "embedding" not in table.column_names:
        raise ValueError(f"{path}: expected an 'embedding' column, found {table.column_names}")
    emb = table.column("embedding").combine_chunks()
    if isinstance(emb, pa.FixedSizeListArray):
        x = emb.flatten().to_numpy(zero_copy_only=False).reshape(len(emb), emb.type.list_size)
    else:
        x = np.stack([np.asarray(v, dtype=np.float32) for v in emb.to_pylist()])
    columns = {
        c: table.column(c).to_numpy(zero_copy_only=False)
        for c in table.column_names
        if c != "embedding"
    }
    return _from_columns(torch.from_numpy(np.array(x, copy=True)), columns, str(path))


def _from_columns(x: torch.Tensor, columns: dict[str, np.ndarray], source: str) -> EmbeddingSet:
    labels = {k: columns[k] for k in LABELS if k in columns}
    if "modality" not in labels:
        raise ValueError(f"{source}: expected a 'modality' column, found {sorted(columns)}")
    extra = {k[len(_EXTRA) :]: _plain(v) for k, v in columns.items() if k.startswith(_EXTRA)}
    return EmbeddingSet(x, extra=extra or None, **{k: _plain(v) for k, v in labels.items()})


def _plain(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "O":
        return column.astype(np.str_)
    return column


# ------------------------------------------------------------------ clip-retrieval folders
_SHARD = re.compile(r"_(\d+)\.(npy|parquet)$")


def _shards(folder: Path, pattern: str) -> list[Path]:
    files = sorted(
        folder.glob(pattern),
        key=lambda p: int(_SHARD.search(p.name).group(1)) if _SHARD.search(p.name) else -1,
    )
    return [f for f in files if _SHARD.search(f.name)]


def load_clip_retrieval(folder: str | Path) -> EmbeddingSet:
    """Load ``img_emb/``, ``text_emb/`` and ``metadata/`` shards (any subset of the first two)."""
    folder = Path(folder)
    metas = _shards(folder / "metadata", "metadata_*.parquet")
    imgs = _shards(folder / "img_emb", "img_emb_*.npy")
    txts = _shards(folder / "text_emb", "text_emb_*.npy")
    if not metas:
        raise ValueError(
            f"{folder}: expected metadata/metadata_<n>.parquet shards (clip-retrieval layout), found none"
        )
    if not imgs and not txts:
        raise ValueError(
            f"{folder}: expected img_emb/img_emb_<n>.npy and/or text_emb/text_emb_<n>.npy shards, found none"
        )
    for name, shards in (("img_emb", imgs), ("text_emb", txts)):
        if shards and len(shards) != len(metas):
            raise ValueError(
                f"{folder}: expected one {name} shard per metadata shard ({len(metas)}), got {len(shards)}"
            )
    parts: list[EmbeddingSet] = []
    for s, meta_path in enumerate(metas):
        meta = pq.read_table(meta_path)
        n = meta.num_rows
        cols = {c: _plain(meta.column(c).to_numpy(zero_copy_only=False)) for c in meta.column_names}
        item = cols.pop("item", None)
        if item is None:
            item = np.char.add(f"{s}:", np.arange(n).astype(np.str_))
        language = cols.pop("language", cols.pop("lang", None))
        culture = cols.pop("culture", None)
        text_culture = cols.pop("text_culture", None)
        for m in ("modality", "id"):
            cols.pop(m, None)
        extra = {k: v for k, v in cols.items() if v.dtype.kind in "biufU"}
        for modality, shards, lang, cult in (
            ("image", imgs, None, culture),
            ("text", txts, language, text_culture),
        ):
            if not shards:
                continue
            x = load_numpy(shards[s])
            if x.shape[0] != n:
                raise ValueError(
                    f"{shards[s]}: expected {n} rows (as in {meta_path.name}), got {x.shape[0]}"
                )
            parts.append(
                EmbeddingSet(
                    torch.from_numpy(x),
                    modality=modality,
                    item=item,
                    id=np.char.add(f"{modality}-{s}:", np.arange(n).astype(np.str_)),
                    language=lang,
                    culture=cult,
                    extra=extra or None,
                )
            )
    return EmbeddingSet.concat(parts)


def save_clip_retrieval(data: EmbeddingSet, folder: str | Path) -> Path:
    """Write one shard of the clip-retrieval layout.

    The layout pairs image row i with caption row i, so the set must hold either one modality,
    or images and texts in equal numbers whose items agree row by row.
    """
    folder = Path(folder)
    is_img = data.modality == "image"
    img = data[is_img] if is_img.any() else None
    txt = data[~is_img] if (~is_img).any() else None
    if img is not None and txt is not None:
        if len(img) != len(txt) or not (img.item == txt.item).all():
            raise ValueError(
                "save_clip_retrieval: the layout pairs image i with caption i; expected equal "
                f"numbers of images and texts with matching items, got {len(img)} images and "
                f"{len(txt)} texts. Save as .npz or .parquet instead."
            )
    ref = img if img is not None else txt
    assert ref is not None
    meta: dict[str, np.ndarray] = {"item": ref.item}
    if txt is not None:
        meta["language"] = txt.language
        meta["text_culture"] = txt.culture
    if img is not None:
        meta["culture"] = img.culture
    meta.update(ref.extra)
    with atomic_path(folder / "metadata" / "metadata_0.parquet") as tmp:
        pq.write_table(pa.table({k: pa.array(v) for k, v in meta.items()}), tmp)
    for name, part in (("img_emb", img), ("text_emb", txt)):
        if part is not None:
            with atomic_path(folder / name / f"{name}_0.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, _embeddings_numpy(part), allow_pickle=False)
    return folder
